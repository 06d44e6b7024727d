"""The jobs repository, events and outbox on every engine, through their real functions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.messages import (
    JOBS_QUEUE,
    NOTIFICATIONS_QUEUE,
    JobEvent,
    JobFailed,
    JobFinished,
    JobProgressed,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    utcnow,
)
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.gateway.events import JobEventHandler
from earshot.gateway.jobs import (
    Cursor,
    create_job,
    delete_job,
    get_job,
    list_jobs,
    submitted_message_id,
)
from earshot.gateway.models import Job, OutboxMessage
from earshot.gateway.outbox import OutboxRelay
from tests.unit.gateway.helpers import FlakyQueue, a_job

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[FlakyQueue]:
    """A queue that records what the relay published."""
    queue = FlakyQueue(EmbeddedQueue(tmp_path / "queue.db", poll_seconds=0.02, lease_seconds=5))
    yield queue
    await queue.close()


@pytest.fixture
def relay(db_sessions: Sessions, queue: FlakyQueue) -> OutboxRelay:
    return OutboxRelay(db_sessions, queue, retention_seconds=0.0)


@pytest.fixture
def handler(db_sessions: Sessions, tmp_path: Path, relay: OutboxRelay) -> JobEventHandler:
    blobs = FolderBlobStore(tmp_path / "blobs")
    return JobEventHandler(db_sessions, blobs, relay, public_url="http://gw.test")


def new_id(n: int = 0) -> str:
    """A unique job id; `n` orders ids the same way in every engine's collation."""
    return f"{n:08d}-{uuid.uuid4()}"[:36]


def a_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def outbox_rows(sessions: Sessions, message_id: str) -> list[OutboxMessage]:
    async with sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.message_id == message_id)
        return list(await session.scalars(query))


async def finished_rows(sessions: Sessions, job_id: str) -> list[JobFinished]:
    """The `JobFinished` messages staged for one job."""
    async with sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.queue == NOTIFICATIONS_QUEUE)
        rows = list(await session.scalars(query))
    found = [JobFinished.model_validate_json(row.body) for row in rows]
    return [message for message in found if message.job_id == job_id]


async def a_queued_job(sessions: Sessions, user_id: str | None = None) -> Job:
    job = a_job(new_id(), user_id=user_id or a_user())
    await create_job(sessions, job)
    return job


async def test_a_job_is_committed_with_its_submission_or_not_at_all(db_sessions: Sessions) -> None:
    # given a committed job
    job = await a_queued_job(db_sessions)
    # when another job reuses its download id (a unique column), the insert fails
    clash = a_job(new_id(), user_id=job.user_id)
    clash.fid = job.fid
    with pytest.raises(IntegrityError):
        await create_job(db_sessions, clash)

    # then the first job has exactly its message, and the failed one left nothing behind
    [row] = await outbox_rows(db_sessions, submitted_message_id(job.id))
    message = JobSubmitted.model_validate_json(row.body)
    assert (row.queue, message.job_id, row.published_at) == (JOBS_QUEUE, job.id, None)
    assert await get_job(db_sessions, clash.id, user_id=job.user_id) is None
    assert await outbox_rows(db_sessions, submitted_message_id(clash.id)) == []


async def test_jobs_are_listed_newest_first_page_by_page(db_sessions: Sessions) -> None:
    # given five jobs of one user: three within one timestamp, two a microsecond apart
    user_id, stamp = a_user(), utcnow()
    created = [
        (new_id(1), stamp + timedelta(microseconds=1)),  # newer, though its id sorts lower
        (new_id(2), stamp),
        (new_id(3), stamp - timedelta(seconds=1)),
        (new_id(4), stamp - timedelta(seconds=1)),
        (new_id(5), stamp - timedelta(seconds=1)),
    ]
    for job_id, created_at in created:
        job = a_job(job_id, user_id=user_id)
        job.created_at = job.updated_at = created_at
        await create_job(db_sessions, job)
    await a_queued_job(db_sessions)  # someone else's

    # when the user pages through them two at a time
    seen: list[str] = []
    after: Cursor | None = None
    for _ in range(4):
        page, after = await list_jobs(db_sessions, user_id=user_id, limit=2, after=after)
        seen += [job.id for job in page]
        if after is None:
            break
        after = Cursor.decode(after.encode())  # through the client and back

    # then they come newest first, ties broken by id, each once
    ids = [job_id for job_id, _ in created]
    assert seen == [ids[0], ids[1], ids[4], ids[3], ids[2]]


async def test_events_are_applied_once_however_often_they_arrive(
    db_sessions: Sessions, handler: JobEventHandler
) -> None:
    job = await a_queued_job(db_sessions)

    async def at_once(event: JobEvent, times: int = 4) -> list[bool]:
        return list(await asyncio.gather(*(handler.apply(event) for _ in range(times))))

    started = await at_once(JobStarted(job_id=job.id, attempt=1))
    progressed = await at_once(JobProgressed(job_id=job.id, percent=33.3))
    late = await handler.apply(JobProgressed(job_id=job.id, percent=12.5))
    succeeded = await at_once(JobSucceeded(job_id=job.id, output_key="audio/x.mp3", output_bytes=7))
    failed = await at_once(JobFailed(job_id=job.id, reason="too late"))

    assert sorted(started) == sorted(progressed) == sorted(succeeded) == [False] * 3 + [True]
    assert not late and failed == [False] * 4
    stored = await get_job(db_sessions, job.id, user_id=job.user_id)
    assert stored is not None
    assert (stored.state, stored.progress, stored.attempt) == ("succeeded", 100.0, 1)
    assert stored.output_bytes == 7 and stored.finished_at is not None
    [finished] = await finished_rows(db_sessions, job.id)
    assert finished.outcome == "succeeded"


async def test_progress_is_stored_exactly(db_sessions: Sessions, handler: JobEventHandler) -> None:
    # MySQL's single-precision FLOAT would store 33.3 as 33.29999923706055.
    job = await a_queued_job(db_sessions)
    await handler.apply(JobStarted(job_id=job.id, attempt=1))

    assert await handler.apply(JobProgressed(job_id=job.id, percent=33.3))
    assert not await handler.apply(JobProgressed(job_id=job.id, percent=33.3))
    stored = await get_job(db_sessions, job.id, user_id=job.user_id)
    assert stored is not None and stored.progress == 33.3


async def test_success_and_failure_racing_leave_one_outcome_and_one_notification(
    db_sessions: Sessions, handler: JobEventHandler
) -> None:
    job = await a_queued_job(db_sessions)

    results = await asyncio.gather(
        handler.apply(JobSucceeded(job_id=job.id, output_key="audio/x.mp3", output_bytes=1)),
        handler.apply(JobFailed(job_id=job.id, reason="ffmpeg crashed")),
    )

    assert sorted(results) == [False, True]
    stored = await get_job(db_sessions, job.id, user_id=job.user_id)
    [finished] = await finished_rows(db_sessions, job.id)
    assert stored is not None and finished.outcome == stored.state


async def test_the_relay_publishes_each_row_once_and_prunes_it(
    db_sessions: Sessions, relay: OutboxRelay, queue: FlakyQueue
) -> None:
    job = await a_queued_job(db_sessions)
    message_id = submitted_message_id(job.id)

    await relay.relay_once()
    await relay.relay_once()

    assert queue.published.count((JOBS_QUEUE, message_id)) == 1
    [row] = await outbox_rows(db_sessions, message_id)
    assert row.published_at is not None and row.published_at.utcoffset() == timedelta(0)
    assert await relay.prune() >= 1  # retention 0: published rows go at once
    assert await outbox_rows(db_sessions, message_id) == []


async def test_deleting_a_job_removes_it_and_its_unsent_submission(db_sessions: Sessions) -> None:
    job = await a_queued_job(db_sessions)

    by_someone_else = await delete_job(db_sessions, job.id, user_id=a_user())
    deleted = await delete_job(db_sessions, job.id, user_id=job.user_id)

    assert by_someone_else is None
    assert deleted is not None and deleted.id == job.id
    assert await get_job(db_sessions, job.id, user_id=job.user_id) is None
    assert await outbox_rows(db_sessions, submitted_message_id(job.id)) == []
