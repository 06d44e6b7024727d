"""Apply the converter's job events to the jobs database, idempotently.

Every change is a conditional UPDATE, so duplicates and late events change nothing and a final state
is never left. The transition to a final state stages the `JobFinished` notification in the same
transaction: exactly one notification per outcome, however often the event is delivered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.common.blobs import BlobError, BlobStore
from earshot.common.messages import (
    JOB_EVENT_ADAPTER,
    NOTIFICATIONS_QUEUE,
    JobEvent,
    JobFailed,
    JobFinished,
    JobProgressed,
    JobStarted,
    JobSucceeded,
    utcnow,
)
from earshot.common.queue import Delivery
from earshot.common.worker import PermanentError
from earshot.gateway import outbox
from earshot.gateway.metrics import GatewayMetrics
from earshot.gateway.models import (
    ERROR_MAX_CHARS,
    FAILED,
    PROCESSING,
    QUEUED,
    SUCCEEDED,
    Job,
    OutboxMessage,
)
from earshot.gateway.outbox import OutboxRelay

_log = structlog.get_logger()
_OPEN_STATES = (QUEUED, PROCESSING)


def finished_message_id(job_id: str, outcome: str) -> str:
    """The message id of a job's one `JobFinished` per outcome (a redriven job may get a second)."""
    return f"{job_id}:finished:{outcome}"


def course_download_url(public_url: str, fid: str) -> str:
    """The course-compatible download link of a job's output."""
    return f"{public_url}/download?fid={fid}"


class JobEventHandler:
    """The `job-events` consumer's handler: parse, apply, then publish what the change staged."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        blobs: BlobStore,
        relay: OutboxRelay,
        *,
        public_url: str,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._relay = relay
        self._public_url = public_url
        self._metrics = metrics

    async def __call__(self, delivery: Delivery) -> None:
        """Handle one delivery; malformed events are permanent failures (dead-lettered)."""
        try:
            event = JOB_EVENT_ADAPTER.validate_json(delivery.body)
        except ValidationError as exc:
            raise PermanentError(f"malformed job event: {exc.errors()[0]['msg']}") from exc
        await self.apply(event)

    async def apply(self, event: JobEvent) -> bool:
        """Apply one event; True when it changed the job."""
        log = _log.bind(job_id=event.job_id, event=event.type)
        if isinstance(event, JobStarted):
            changed = await self._update(
                event.job_id,
                (Job.state.in_(_OPEN_STATES), Job.attempt < event.attempt),
                state=PROCESSING,
                attempt=event.attempt,
                progress=0.0,
                started_at=event.occurred_at,
            )
        elif isinstance(event, JobProgressed):
            changed = await self._update(
                event.job_id,
                (Job.state == PROCESSING, Job.progress < event.percent),
                progress=event.percent,
            )
        else:
            changed = await self._finish(event)
        log.debug("job_event.applied" if changed else "job_event.ignored")
        if changed and self._metrics is not None and not isinstance(event, JobProgressed):
            state = {"job.started": PROCESSING, "job.succeeded": SUCCEEDED}.get(event.type, FAILED)
            self._metrics.job_transitions.labels(state=state).inc()
        return changed

    async def _update(self, job_id: str, conditions: tuple[Any, ...], **values: Any) -> bool:
        async with self._sessions() as session, session.begin():
            return await _conditional_update(session, job_id, conditions, values)

    async def _finish(self, event: JobSucceeded | JobFailed) -> bool:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            changed = await _conditional_update(
                session, event.job_id, (Job.state.in_(_OPEN_STATES),), _final_values(event, now)
            )
            job = await session.get(Job, event.job_id, populate_existing=True)
            staged = self._stage_finished(session, job) if changed and job is not None else None
        if job is None:
            await self._drop_orphan(event)
            return False
        if staged is not None:
            _log.info("job.finished", job_id=job.id, user_id=job.user_id, state=job.state)
            await self._relay.publish_now([staged])
            if not (isinstance(event, JobFailed) and not event.permanent):
                # A failure that may pass keeps its input, so an admin can redrive the job.
                await self._drop_input(job)
        return changed

    def _stage_finished(self, session: AsyncSession, job: Job) -> OutboxMessage:
        succeeded = job.state == SUCCEEDED
        message = JobFinished(
            job_id=job.id,
            outcome="succeeded" if succeeded else "failed",
            user_id=job.user_id,
            username=job.username,
            video_fid=job.id,
            mp3_fid=job.fid if succeeded else None,
            original_filename=job.original_filename,
            download_url=course_download_url(self._public_url, job.fid) if succeeded else None,
            error=job.error,
        )
        return outbox.stage(
            session,
            queue=NOTIFICATIONS_QUEUE,
            message_id=finished_message_id(job.id, message.outcome),
            body=message.to_bytes(),
        )

    async def _drop_input(self, job: Job) -> None:
        """The input is no longer needed once the job is final (stored files must not pile up)."""
        try:
            await self._blobs.delete(job.input_key)
        except BlobError as exc:
            _log.warning("job.input_not_deleted", job_id=job.id, error=str(exc))

    async def _drop_orphan(self, event: JobSucceeded | JobFailed) -> None:
        """The job was deleted while converting: its output has no owner any more."""
        if isinstance(event, JobSucceeded) and event.output_key.startswith("audio/"):
            await self._blobs.delete(event.output_key)
            _log.info("job_event.orphan_output_deleted", job_id=event.job_id)


def _final_values(event: JobSucceeded | JobFailed, now: datetime) -> dict[str, Any]:
    if isinstance(event, JobSucceeded):
        return {
            "state": SUCCEEDED,
            "progress": 100.0,
            "output_key": event.output_key,
            "output_bytes": event.output_bytes,
            "output_duration_seconds": event.output_duration_seconds,
            "error": None,
            "finished_at": now,
        }
    return {"state": FAILED, "error": event.reason[:ERROR_MAX_CHARS], "finished_at": now}


async def _conditional_update(
    session: AsyncSession, job_id: str, conditions: tuple[Any, ...], values: dict[str, Any]
) -> bool:
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, *conditions)
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
