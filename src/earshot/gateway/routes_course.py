"""The course's routes, byte-compatible with its curl commands: `/login`, `/upload`, `/download`.

Errors here are plain text with the course's exact bodies; earshot adds ids to the upload answer,
404 for a fid that is unknown or someone else's, and 409 naming the state of an unfinished job.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from earshot.common.messages import ConversionOptions
from earshot.common.problems import Problem
from earshot.gateway import authproxy
from earshot.gateway.audio import audio_response
from earshot.gateway.deps import CourseClaims, GatewayDep, owner_of
from earshot.gateway.errors import PlainTextProblem
from earshot.gateway.jobs import get_job_by_fid
from earshot.gateway.models import FAILED, SUCCEEDED, Job
from earshot.gateway.schemas import CourseUploadOut
from earshot.gateway.submit import WrongFileCount, submit_upload
from earshot.gateway.uploads import NotMultipart

EXACTLY_ONE_FILE = "exactly 1 file required"
_PLAIN: dict[str, Any] = {"content": {"text/plain": {}}}

router = APIRouter(tags=["course"])


@router.post(
    "/login",
    summary="Sign in with HTTP Basic; the body of the answer is the JWT",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: _PLAIN, 429: _PLAIN, 503: _PLAIN},
)
async def login(gateway: GatewayDep, request: Request) -> Response:
    """Proxy to auth's `/login`: its status and body come back unchanged."""
    try:
        return await authproxy.forward(gateway, request, path="/login")
    except Problem as exc:
        raise PlainTextProblem.of(exc) from exc


@router.post(
    "/upload",
    summary="Upload one video (multipart, any field name) and queue its conversion to MP3",
    responses={400: _PLAIN, 401: _PLAIN, 413: _PLAIN, 415: _PLAIN, 422: _PLAIN, 503: _PLAIN},
)
async def upload(gateway: GatewayDep, claims: CourseClaims, request: Request) -> CourseUploadOut:
    """Answers 200 once the job is durable, with its id and the future download id."""
    try:
        job = await submit_upload(
            gateway,
            request,
            owner=owner_of(claims),
            file_field=None,
            parse_options=lambda _fields: ConversionOptions(),
        )
    except (WrongFileCount, NotMultipart) as exc:
        raise PlainTextProblem(EXACTLY_ONE_FILE, status=400) from exc
    except Problem as exc:
        raise PlainTextProblem.of(exc) from exc
    return CourseUploadOut(job_id=job.id, fid=job.fid)


@router.get(
    "/download",
    summary="Download the MP3 of a finished job by its fid",
    response_class=Response,
    responses={
        200: {"content": {"audio/mpeg": {}}},
        400: _PLAIN,
        401: _PLAIN,
        404: _PLAIN,
        409: _PLAIN,
    },
)
async def download(
    gateway: GatewayDep,
    claims: CourseClaims,
    request: Request,
    fid: Annotated[str | None, Query(description="The fid `/upload` answered.")] = None,
) -> Response:
    """The audio of the caller's job; 404 for a fid that is unknown or not the caller's."""
    if not fid:
        raise PlainTextProblem("fid is required", status=400)
    job = await get_job_by_fid(gateway.sessions, fid, user_id=claims.sub)
    if job is None:
        raise PlainTextProblem("not found", status=404)
    if job.state != SUCCEEDED:
        raise PlainTextProblem(unfinished_detail(job), status=409)
    try:
        return await audio_response(
            request, blobs=gateway.blobs, job=job, chunk_bytes=gateway.settings.upload_chunk_bytes
        )
    except Problem as exc:
        raise PlainTextProblem.of(exc) from exc


def unfinished_detail(job: Job) -> str:
    """Why a job has no audio yet, naming its state."""
    if job.state == FAILED:
        return f"job failed: {job.error or 'unknown error'}"
    return f"job is {job.state}"
