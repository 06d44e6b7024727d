"""`/api/v1/admin`: dead-lettered messages (list, redrive), for tokens with `admin: true`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from earshot.common.problems import Forbidden, Problem
from earshot.common.tokens import Claims
from earshot.gateway.admin import DeadLetter, RedriveError, list_dead_letters, redrive
from earshot.gateway.deps import GatewayDep, api_claims

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    responses={401: _PROBLEM, 403: _PROBLEM, 404: _PROBLEM, 409: _PROBLEM, 503: _PROBLEM},
)


async def admin_claims(claims: Annotated[Claims, Depends(api_claims)]) -> Claims:
    """The caller's claims, which must say `admin`; 403 otherwise."""
    if not claims.admin:
        raise Forbidden("this needs an admin token")
    return claims


AdminClaims = Annotated[Claims, Depends(admin_claims)]


class DeadLetterOut(BaseModel):
    """A message that its consumers gave up on."""

    message_id: str
    reason: str = Field(description="Why it was dead-lettered.")
    job_id: str | None = Field(description="The job it is about, when it names one.")
    size_bytes: int


@router.get("/dead-letters/{queue}", response_model=list[DeadLetterOut])
async def dead_letters(
    queue: str,
    gateway: GatewayDep,
    _admin: AdminClaims,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetterOut]:
    """Dead letters of `video`, `job-events` or `mp3`, oldest first."""
    try:
        found = await list_dead_letters(gateway.queue, queue, limit=limit)
    except RedriveError as exc:
        raise Problem(str(exc), status=exc.status, title="Cannot list") from exc
    return [_out(item) for item in found]


@router.post("/dead-letters/{queue}/{message_id}/redrive", status_code=204)
async def redrive_dead_letter(
    queue: str, message_id: str, gateway: GatewayDep, _admin: AdminClaims
) -> Response:
    """Put one dead letter back on its queue (a `video` one reopens its failed job)."""
    try:
        await redrive(
            gateway.sessions, gateway.queue, gateway.blobs, queue_name=queue, message_id=message_id
        )
    except RedriveError as exc:
        raise Problem(str(exc), status=exc.status, title="Cannot redrive") from exc
    return Response(status_code=204)


def _out(item: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(
        message_id=item.message_id,
        reason=item.reason,
        job_id=item.job_id,
        size_bytes=item.size_bytes,
    )
