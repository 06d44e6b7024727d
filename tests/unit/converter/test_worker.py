"""The converter handler in the real consumer loop, over the embedded queue and folder blobs."""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path

import pytest

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.messages import (
    JOB_EVENTS_QUEUE,
    JOBS_QUEUE,
    ConversionOptions,
    JobProgressed,
    JobStarted,
    JobSucceeded,
)
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.converter.worker import ProgressReporter
from tests.unit.converter.conftest import LONG_SECONDS
from tests.unit.converter.support import (
    collect_events,
    finished,
    job_dirs,
    make_worker,
    output_codec,
    queue_is_empty,
    running,
    submit,
)


async def test_a_job_becomes_an_output_blob_and_events(
    queue: EmbeddedQueue, blobs: FolderBlobStore, work_dir: Path, media_dir: Path
) -> None:
    # Given a submitted job
    job = await submit(queue, blobs, media_dir / "h264_aac.mp4")

    # When the converter runs
    async with running(queue, make_worker(queue, blobs, work_dir)):
        events = await collect_events(queue, finished({job.job_id}))

    # Then the output is stored, started and succeeded were reported, the message was acked
    info = await blobs.stat(job.output_key)
    assert info is not None
    assert await output_codec(blobs, job.output_key) == "mp3"
    assert isinstance(events[0], JobStarted)
    assert events[0].attempt == 1
    succeeded = events[-1]
    assert isinstance(succeeded, JobSucceeded)
    assert succeeded.output_key == job.output_key
    assert succeeded.output_bytes == info.size_bytes
    assert succeeded.output_duration_seconds == pytest.approx(3.0, abs=0.15)
    assert await queue_is_empty(queue, JOBS_QUEUE)
    assert job_dirs(work_dir) == []


async def test_progress_is_reported_and_throttled(
    queue: EmbeddedQueue, blobs: FolderBlobStore, work_dir: Path, long_audio: Path
) -> None:
    job = await submit(queue, blobs, long_audio, input_duration_seconds=LONG_SECONDS)
    worker = make_worker(queue, blobs, work_dir, progress_interval_seconds=0.4)
    async with running(queue, worker):
        events = await collect_events(queue, finished({job.job_id}))
    progress = [e for e in events if isinstance(e, JobProgressed)]
    assert progress
    percents = [p.percent for p in progress]
    assert percents == sorted(percents)
    gaps = [(b.occurred_at - a.occurred_at).total_seconds() for a, b in pairwise(progress)]
    assert all(gap >= 0.35 for gap in gaps)
    assert isinstance(events[-1], JobSucceeded)


async def test_a_redelivered_finished_job_is_not_converted_again(
    queue: EmbeddedQueue, blobs: FolderBlobStore, work_dir: Path, media_dir: Path
) -> None:
    # Given a job converted once
    worker = make_worker(queue, blobs, work_dir)
    job = await submit(queue, blobs, media_dir / "h264_aac.mp4")
    async with running(queue, worker):
        first = await collect_events(queue, finished({job.job_id}))
    async with blobs.local_path(job.output_key) as path:
        before = os.stat(path)

    # When its message comes again (the converter died after storing, before reporting)
    await queue.publish(JOBS_QUEUE, job.to_bytes(), message_id=f"{job.job_id}:again")
    async with running(queue, worker):
        second = await collect_events(queue, finished({job.job_id}))

    # Then the output is untouched, and success is reported again without a new start
    async with blobs.local_path(job.output_key) as path:
        after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [type(e) for e in second] == [JobSucceeded]
    assert second[0] == first[-1].model_copy(update={"occurred_at": second[0].occurred_at})
    assert await queue_is_empty(queue, JOBS_QUEUE)


async def test_two_converters_share_the_work(
    tmp_path: Path, blobs: FolderBlobStore, work_dir: Path, media_dir: Path
) -> None:
    # Given two converters, each with its own connection to the same queue file
    first = EmbeddedQueue(tmp_path / "queue.db", poll_seconds=0.02, lease_seconds=3)
    second = EmbeddedQueue(tmp_path / "queue.db", poll_seconds=0.02, lease_seconds=3)
    try:
        jobs = [await submit(first, blobs, media_dir / "h264_aac.mp4") for _ in range(4)]
        ids = {job.job_id for job in jobs}
        async with (
            running(first, make_worker(first, blobs, work_dir)),
            running(second, make_worker(second, blobs, work_dir)),
        ):
            events = await collect_events(first, finished(ids))
    finally:
        await first.close()
        await second.close()
    # Then every job was started once and succeeded once
    assert sorted(e.job_id for e in events if isinstance(e, JobStarted)) == sorted(ids)
    assert sorted(e.job_id for e in events if isinstance(e, JobSucceeded)) == sorted(ids)


async def test_progress_events_go_to_the_job_events_queue(queue: EmbeddedQueue) -> None:
    reporter = ProgressReporter(queue, "job-1", interval_seconds=0)
    await reporter(12.345)
    events = await collect_events(queue, lambda events: len(events) == 1, timeout_seconds=5)
    assert [(e.job_id, e.percent) for e in events if isinstance(e, JobProgressed)] == [
        ("job-1", 12.3)
    ]
    assert await queue_is_empty(queue, JOB_EVENTS_QUEUE)


async def test_other_formats_are_stored_under_the_output_key(
    queue: EmbeddedQueue, blobs: FolderBlobStore, work_dir: Path, media_dir: Path
) -> None:
    job = await submit(
        queue, blobs, media_dir / "h264_aac.mp4", options=ConversionOptions(format="opus")
    )
    async with running(queue, make_worker(queue, blobs, work_dir)):
        await collect_events(queue, finished({job.job_id}))
    assert job.output_key.endswith(".opus")
    assert await output_codec(blobs, job.output_key) == "opus"
