"""Dead-lettered messages, for admins: list them, and redrive one (reopening its failed job).

A `video` message is dead-lettered after its retries ran out; its job is then `failed` and its
input kept. Redriving reopens the job (`failed` → `queued`) before the message goes back, so the
converter's next report moves the job again and the user hears about the new outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.common.blobs import BlobStore
from earshot.common.messages import ALL_QUEUES, JOBS_QUEUE, JobSubmitted, utcnow
from earshot.common.queue import MessageQueue
from earshot.gateway.models import FAILED, QUEUED, Job

DEAD_LETTERS_SCAN_LIMIT = 1000


class RedriveError(Exception):
    """The message cannot be redriven; `status` is the HTTP status that says why."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered message as an admin sees it."""

    message_id: str
    reason: str
    job_id: str | None
    size_bytes: int


def check_queue_name(queue_name: str) -> None:
    """Only earshot's own queues have dead letters."""
    if queue_name not in ALL_QUEUES:
        raise RedriveError(
            f"unknown queue {queue_name!r}; one of: {', '.join(ALL_QUEUES)}", status=404
        )


async def list_dead_letters(
    queue: MessageQueue, queue_name: str, *, limit: int
) -> list[DeadLetter]:
    """The dead letters of one queue, oldest first."""
    check_queue_name(queue_name)
    found = await queue.dead_letters(queue_name, limit=limit)
    return [
        DeadLetter(message_id=mid, reason=reason, job_id=_job_id(body), size_bytes=len(body))
        for mid, body, reason in found
    ]


async def redrive(
    sessions: async_sessionmaker[AsyncSession],
    queue: MessageQueue,
    blobs: BlobStore,
    *,
    queue_name: str,
    message_id: str,
) -> None:
    """Move one dead letter back to its queue; a `video` one reopens its failed job first."""
    check_queue_name(queue_name)
    found = {
        mid: body
        for mid, body, _ in await queue.dead_letters(queue_name, limit=DEAD_LETTERS_SCAN_LIMIT)
    }
    if message_id not in found:
        raise RedriveError(f"no dead letter {message_id!r} in {queue_name}", status=404)
    if queue_name == JOBS_QUEUE:
        await _reopen_job(sessions, blobs, found[message_id])
    if not await queue.redrive(queue_name, message_id):
        raise RedriveError(f"dead letter {message_id!r} was taken meanwhile", status=409)


async def _reopen_job(
    sessions: async_sessionmaker[AsyncSession], blobs: BlobStore, body: bytes
) -> None:
    try:
        job = JobSubmitted.model_validate_json(body)
    except ValidationError as exc:
        raise RedriveError("the message is not a job; it cannot be redriven", status=409) from exc
    if await blobs.stat(job.input_key) is None:
        raise RedriveError(f"job {job.job_id}: its input file is gone", status=409)
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(Job)
            .where(Job.id == job.job_id, Job.state == FAILED)
            .values(state=QUEUED, error=None, progress=0.0, attempt=0, started_at=None,
                    finished_at=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        if not getattr(result, "rowcount", 0):
            current = await session.get(Job, job.job_id)
            state = "deleted" if current is None else current.state
            raise RedriveError(f"job {job.job_id} is {state}, not failed", status=409)


def _job_id(body: bytes) -> str | None:
    """The job a message is about, whatever its type; None for garbage."""
    try:
        value = json.loads(body).get("job_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
