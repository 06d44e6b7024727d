"""Applying the converter's job events: forward-only, idempotent, one notification per outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.messages import (
    JOB_EVENTS_QUEUE,
    NOTIFICATIONS_QUEUE,
    JobFailed,
    JobFinished,
    JobProgressed,
    JobStarted,
    JobSucceeded,
)
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.common.worker import PermanentError
from earshot.gateway.deps import Gateway
from earshot.gateway.events import JobEventHandler
from earshot.gateway.jobs import create_job, get_job
from earshot.gateway.models import OutboxMessage
from tests.unit.gateway.helpers import a_job, blob_keys, drain, take


@pytest.fixture
def handler(gateway: Gateway, blobs: FolderBlobStore) -> JobEventHandler:
    return JobEventHandler(gateway.sessions, blobs, gateway.relay, public_url="http://gw.test")


@pytest.fixture
async def job_id(gateway: Gateway, blobs: FolderBlobStore) -> str:
    await create_job(gateway.sessions, a_job("j1"))
    async with blobs.open_write("videos/j1") as writer:
        await writer.write(b"video")
    return "j1"


async def state_of(gateway: Gateway, job_id: str) -> tuple[str, float, int]:
    job = await get_job(gateway.sessions, job_id, user_id="u1")
    assert job is not None
    return job.state, job.progress, job.attempt


async def finished_rows(gateway: Gateway) -> list[JobFinished]:
    async with gateway.sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.queue == NOTIFICATIONS_QUEUE)
        )
        return [JobFinished.model_validate_json(row.body) for row in rows]


async def test_a_job_moves_forward_through_started_progress_and_success(
    gateway: Gateway, handler: JobEventHandler, job_id: str, blobs: FolderBlobStore
) -> None:
    assert await handler.apply(JobStarted(job_id=job_id, attempt=1))
    assert await state_of(gateway, job_id) == ("processing", 0.0, 1)

    assert await handler.apply(JobProgressed(job_id=job_id, percent=40))
    assert not await handler.apply(JobProgressed(job_id=job_id, percent=30))  # never backwards
    assert await state_of(gateway, job_id) == ("processing", 40.0, 1)

    done = JobSucceeded(
        job_id=job_id, output_key="audio/fid-j1.mp3", output_bytes=1234, output_duration_seconds=3
    )
    assert await handler.apply(done)

    job = await get_job(gateway.sessions, job_id, user_id="u1")
    assert job is not None
    assert (job.state, job.progress, job.output_bytes) == ("succeeded", 100.0, 1234)
    assert job.finished_at is not None
    assert await blob_keys(blobs, "videos/") == []  # the input is no longer needed


async def test_duplicates_and_late_events_change_nothing(
    gateway: Gateway, handler: JobEventHandler, job_id: str
) -> None:
    done = JobSucceeded(job_id=job_id, output_key="audio/fid-j1.mp3", output_bytes=1)
    await handler.apply(JobStarted(job_id=job_id, attempt=1))
    await handler.apply(done)

    assert not await handler.apply(done)
    assert not await handler.apply(JobFailed(job_id=job_id, reason="late"))
    assert not await handler.apply(JobStarted(job_id=job_id, attempt=2))
    assert not await handler.apply(JobProgressed(job_id=job_id, percent=50))
    assert not await handler.apply(JobStarted(job_id=job_id, attempt=1))

    assert await state_of(gateway, job_id) == ("succeeded", 100.0, 1)
    [finished] = await finished_rows(gateway)
    assert finished.outcome == "succeeded"
    assert finished.mp3_fid == "fid-j1"
    assert finished.download_url == "http://gw.test/download?fid=fid-j1"
    assert finished.username == "u1@example.com"


async def test_a_redelivered_job_counts_its_attempts(
    gateway: Gateway, handler: JobEventHandler, job_id: str
) -> None:
    await handler.apply(JobStarted(job_id=job_id, attempt=1))
    await handler.apply(JobProgressed(job_id=job_id, percent=70))
    await handler.apply(JobStarted(job_id=job_id, attempt=2))

    assert await state_of(gateway, job_id) == ("processing", 0.0, 2)


async def test_failure_is_final_and_notified_once_with_the_reason(
    gateway: Gateway, handler: JobEventHandler, job_id: str
) -> None:
    failed = JobFailed(job_id=job_id, reason="the video has no audio track")

    assert await handler.apply(failed)
    assert not await handler.apply(failed)
    assert not await handler.apply(
        JobSucceeded(job_id=job_id, output_key="audio/fid-j1.mp3", output_bytes=1)
    )

    job = await get_job(gateway.sessions, job_id, user_id="u1")
    assert job is not None and (job.state, job.error) == ("failed", "the video has no audio track")
    [finished] = await finished_rows(gateway)
    assert (finished.outcome, finished.error, finished.mp3_fid) == (
        "failed",
        "the video has no audio track",
        None,
    )


async def test_success_for_a_deleted_job_removes_the_orphan_output(
    handler: JobEventHandler, blobs: FolderBlobStore, gateway: Gateway
) -> None:
    async with blobs.open_write("audio/gone.mp3") as writer:
        await writer.write(b"mp3")

    changed = await handler.apply(
        JobSucceeded(job_id="deleted", output_key="audio/gone.mp3", output_bytes=3)
    )

    assert not changed
    assert await blob_keys(blobs) == []
    assert await finished_rows(gateway) == []


async def test_a_malformed_event_is_a_permanent_failure(handler: JobEventHandler) -> None:
    class Junk:
        message_id, body, attempt = "m", b'{"type": "job.exploded"}', 1

    with pytest.raises(PermanentError):
        await handler(Junk())  # type: ignore[arg-type]


async def test_the_running_app_applies_events_from_the_queue_and_notifies(
    make_app: Callable[..., FastAPI], embedded_queue: EmbeddedQueue, job_id: str, gateway: Gateway
) -> None:
    # given a running gateway
    app = make_app()
    async with app.router.lifespan_context(app):
        await take(embedded_queue, "video")  # the job's submission, relayed at start-up

        # when the converter reports the outcome (twice, as after a redelivery)
        done = JobSucceeded(job_id=job_id, output_key="audio/fid-j1.mp3", output_bytes=9)
        for message_id in ("e1", "e2"):
            await embedded_queue.publish(JOB_EVENTS_QUEUE, done.to_bytes(), message_id=message_id)

        # then the user is notified once
        notice = await take(embedded_queue, NOTIFICATIONS_QUEUE)
        await asyncio.sleep(0.3)  # time for the duplicate to be (not) applied
    assert JobFinished.model_validate_json(notice.body).outcome == "succeeded"
    assert notice.message_id == f"{job_id}:finished:succeeded"
    assert await drain(embedded_queue, NOTIFICATIONS_QUEUE) == []
    assert await state_of(gateway, job_id) == ("succeeded", 100.0, 0)
