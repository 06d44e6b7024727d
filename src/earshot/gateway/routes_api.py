"""The `/api/v1` routes: sign-in and the caller's jobs (create, list, read, download, delete)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from earshot.common.messages import AUDIO_FORMATS, ConversionOptions
from earshot.common.problems import Conflict, NotFound, Problem
from earshot.gateway import authproxy
from earshot.gateway.audio import audio_response, download_filename
from earshot.gateway.deps import ApiClaims, Gateway, GatewayDep, owner_of
from earshot.gateway.jobs import Cursor, InvalidCursor, delete_job, get_job, list_jobs
from earshot.gateway.models import SUCCEEDED, Job
from earshot.gateway.routes_course import unfinished_detail
from earshot.gateway.schemas import JobOut, JobPage, TokenOut
from earshot.gateway.submit import submit_upload

DEFAULT_PAGE_SIZE = 20
_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}

router = APIRouter(prefix="/api/v1", responses={401: _PROBLEM, 503: _PROBLEM})


class UnprocessableContent(Problem):
    """The request is well-formed but its values cannot be used."""

    status, title = 422, "Unprocessable Content"


_TOKEN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["email", "password"],
                    "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
                }
            },
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string"},
                        "password": {"type": "string"},
                    },
                }
            },
        },
    }
}

_JOB_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "format": {"type": "string", "enum": list(AUDIO_FORMATS), "default": "mp3"},
                        "bitrate": {"type": "string", "pattern": "^[1-9][0-9]{1,2}k$"},
                        "quality": {"type": "integer", "minimum": 0, "maximum": 9},
                    },
                }
            }
        },
    }
}


@router.post(
    "/auth/token",
    tags=["auth"],
    summary="Exchange an email and password for an access token",
    response_class=Response,
    responses={200: {"model": TokenOut}, 400: _PROBLEM, 422: _PROBLEM, 429: _PROBLEM},
    openapi_extra=_TOKEN_BODY,
)
async def token(gateway: GatewayDep, request: Request) -> Response:
    """JSON `{"email", "password"}` or an OAuth2 password form; proxied to the auth service."""
    return await authproxy.forward(gateway, request, path="/api/v1/auth/token")


@router.post(
    "/jobs",
    tags=["jobs"],
    status_code=202,
    summary="Upload a video and queue its conversion",
    responses={400: _PROBLEM, 413: _PROBLEM, 415: _PROBLEM, 422: _PROBLEM},
    openapi_extra=_JOB_BODY,
)
async def create_job(
    gateway: GatewayDep, claims: ApiClaims, request: Request, response: Response
) -> JobOut:
    """Multipart `file` plus `format`, and `bitrate` (CBR) or `quality` (VBR); 202 once durable."""
    job = await submit_upload(
        gateway,
        request,
        owner=owner_of(claims),
        file_field="file",
        parse_options=parse_options,
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return _out(job)


@router.get(
    "/jobs", tags=["jobs"], summary="The caller's jobs, newest first", responses={422: _PROBLEM}
)
async def jobs(
    gateway: GatewayDep,
    claims: ApiClaims,
    request: Request,
    limit: Annotated[int, Query(ge=1, description="Jobs per page.")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> JobPage:
    """One page of the caller's jobs; follow `next` for more."""
    if limit > gateway.settings.jobs_page_size_max:
        raise UnprocessableContent(f"limit: at most {gateway.settings.jobs_page_size_max}")
    try:
        after = Cursor.decode(cursor) if cursor else None
    except InvalidCursor as exc:
        raise UnprocessableContent("cursor: invalid cursor") from exc
    page, following = await list_jobs(
        gateway.sessions, user_id=claims.sub, limit=limit, after=after
    )
    next_cursor = following.encode() if following else None
    next_url = None
    if next_cursor is not None:
        next_url = f"{request.url.path}?{urlencode({'limit': limit, 'cursor': next_cursor})}"
    return JobPage(items=[_out(job) for job in page], next_cursor=next_cursor, next=next_url)


@router.get("/jobs/{job_id}", tags=["jobs"], summary="One job", responses={404: _PROBLEM})
async def job(gateway: GatewayDep, claims: ApiClaims, job_id: str) -> JobOut:
    """State, progress, input facts and, once done, the output or the error."""
    return _out(await _own_job(gateway, claims.sub, job_id))


@router.get(
    "/jobs/{job_id}/audio",
    tags=["jobs"],
    summary="Download a job's audio (supports Range and ETag)",
    response_class=Response,
    responses={
        200: {"content": {"audio/mpeg": {}}, "description": "The whole file."},
        206: {"description": "The requested byte range."},
        304: {"description": "Not modified (`If-None-Match`)."},
        404: _PROBLEM,
        409: _PROBLEM,
        416: _PROBLEM,
    },
)
async def audio(gateway: GatewayDep, claims: ApiClaims, request: Request, job_id: str) -> Response:
    """The converted audio as an attachment named after the original file."""
    found = await _own_job(gateway, claims.sub, job_id)
    if found.state != SUCCEEDED:
        raise Conflict(unfinished_detail(found), state=found.state)
    return await audio_response(
        request, blobs=gateway.blobs, job=found, chunk_bytes=gateway.settings.upload_chunk_bytes
    )


@router.delete(
    "/jobs/{job_id}",
    tags=["jobs"],
    status_code=204,
    summary="Delete a job and its files",
    response_class=Response,
    responses={404: _PROBLEM},
)
async def remove_job(gateway: GatewayDep, claims: ApiClaims, job_id: str) -> Response:
    """Removes the job record, the uploaded video and the audio."""
    deleted = await delete_job(gateway.sessions, job_id, user_id=claims.sub)
    if deleted is None:
        raise NotFound("no such job")
    await gateway.blobs.delete(deleted.input_key)
    await gateway.blobs.delete(deleted.output_key)
    return Response(status_code=204)


def parse_options(fields: dict[str, str]) -> ConversionOptions:
    """Conversion options from the form's text fields; 422 for unusable values."""
    values = {name: value.strip() for name, value in fields.items() if value.strip()}
    if "bitrate" in values and "quality" in values:
        raise UnprocessableContent("give either bitrate (CBR) or quality (VBR), not both")
    try:
        return ConversionOptions.model_validate(
            {key: values[key] for key in ("format", "bitrate", "quality") if key in values}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise UnprocessableContent(f"{where}: {first.get('msg')}") from exc


async def _own_job(gateway: Gateway, user_id: str, job_id: str) -> Job:
    found = await get_job(gateway.sessions, job_id, user_id=user_id)
    if found is None:
        raise NotFound("no such job")
    return found


def _out(job: Job) -> JobOut:
    return JobOut.of(job, filename=download_filename(job))
