"""Helpers of the worker tests: submit a job, run the consumer loop, read the job events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from uuid import uuid4

import av
import psutil

from earshot.common.blobs import BlobStore
from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.messages import (
    JOB_EVENT_ADAPTER,
    JOB_EVENTS_QUEUE,
    JOBS_QUEUE,
    ConversionOptions,
    JobEvent,
    JobFailed,
    JobSubmitted,
    JobSucceeded,
)
from earshot.common.queue import MessageQueue
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.common.worker import run_consumer
from earshot.converter.arguments import FfmpegConfig, locate_ffmpeg
from earshot.converter.worker import ConversionWorker


async def submit(
    queue: MessageQueue,
    blobs: BlobStore,
    source: Path | None,
    *,
    options: ConversionOptions | None = None,
    input_audio_codec: str | None = "aac",
    input_duration_seconds: float | None = 3.0,
) -> JobSubmitted:
    """Store `source` as the input blob (unless None) and publish its job, as the gateway does."""
    job_id = uuid4().hex
    options = options or ConversionOptions()
    job = JobSubmitted(
        job_id=job_id,
        user_id="user-1",
        username="georgio@email.com",
        video_fid=f"v{job_id}",
        mp3_fid=f"a{job_id}",
        input_key=f"videos/{job_id}",
        output_key=f"audio/{job_id}.{options.format}",
        original_filename="video.mkv",
        options=options,
        input_audio_codec=input_audio_codec,
        input_duration_seconds=input_duration_seconds,
    )
    if source is not None:
        await blobs.put_file(job.input_key, source)
    await queue.publish(JOBS_QUEUE, job.to_bytes(), message_id=job_id)
    return job


@contextlib.asynccontextmanager
async def running(
    queue: MessageQueue,
    worker: ConversionWorker,
    *,
    max_attempts: int = 5,
    backoff_base_seconds: float = 0.05,
    concurrency: int = 1,
) -> AsyncIterator[None]:
    """The converter's consumer loop running in the background for the block's duration."""
    stop = asyncio.Event()
    loop = asyncio.create_task(
        run_consumer(
            queue,
            JOBS_QUEUE,
            worker.handle,
            stop=stop,
            max_attempts=max_attempts,
            backoff_base_seconds=backoff_base_seconds,
            backoff_max_seconds=backoff_base_seconds * 4,
            on_give_up=worker.give_up,
            concurrency=concurrency,
            grace_seconds=10,
        )
    )
    try:
        yield
    finally:
        stop.set()
        await loop


def finished(job_ids: set[str]) -> Callable[[list[JobEvent]], bool]:
    """A condition: each of these jobs has a final event."""

    def done(events: list[JobEvent]) -> bool:
        final = {e.job_id for e in events if isinstance(e, JobSucceeded | JobFailed)}
        return job_ids <= final

    return done


async def collect_events(
    queue: MessageQueue,
    until: Callable[[list[JobEvent]], bool],
    *,
    timeout_seconds: float = 60,
) -> list[JobEvent]:
    """Consume (and ack) job events until `until` holds."""
    events: list[JobEvent] = []
    async with asyncio.timeout(timeout_seconds):
        async with contextlib.aclosing(queue.consume(JOB_EVENTS_QUEUE)) as deliveries:
            async for delivery in deliveries:
                events.append(JOB_EVENT_ADAPTER.validate_json(delivery.body))
                await delivery.ack()
                if until(events):
                    break
    return events


async def queue_is_empty(queue: MessageQueue, name: str, *, wait_seconds: float = 0.5) -> bool:
    """True when nothing can be taken from `name` for `wait_seconds` (everything was acked)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_seconds):
            async with contextlib.aclosing(queue.consume(name)) as deliveries:
                async for delivery in deliveries:
                    await delivery.retry(delay_seconds=0)
                    return False
    return True


def job_dirs(work_dir: Path) -> list[Path]:
    """The per-job temporary directories still present."""
    return sorted(work_dir.glob("job-*")) if work_dir.exists() else []


def is_gone(process: psutil.Process) -> bool:
    """True when the process has exited (a zombie waiting to be reaped counts as exited)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until_gone(processes: list[psutil.Process], timeout_seconds: float = 10) -> None:
    """Wait until every one of `processes` has exited; fail the test after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while not all(is_gone(p) for p in processes):
        assert time.monotonic() < deadline, "a process outlived its parent"
        time.sleep(0.05)


def make_worker(
    queue: EmbeddedQueue,
    blobs: FolderBlobStore,
    work_dir: Path,
    *,
    ffmpeg: FfmpegConfig | None = None,
    progress_interval_seconds: float = 0.0,
) -> ConversionWorker:
    """A worker over these adapters, with the real ffmpeg unless another is given."""
    return ConversionWorker(
        queue=queue,
        blobs=blobs,
        ffmpeg=ffmpeg or FfmpegConfig(executable=locate_ffmpeg(), timeout_seconds=60),
        work_dir=work_dir,
        progress_interval_seconds=progress_interval_seconds,
    )


async def output_codec(blobs: FolderBlobStore, key: str) -> str:
    """The codec of a stored audio blob, read with PyAV."""
    async with blobs.local_path(key) as path:
        with av.open(str(path)) as container:
            return str(container.streams.audio[0].codec.canonical_name)


def stray_processes() -> list[psutil.Process]:
    """Live descendants of this test process, except session-long test servers (moto's S3)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.is_running() and not any("moto" in a for a in process.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found
