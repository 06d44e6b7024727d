"""The handler the consumer loop runs for each `JobSubmitted`: convert, store, report.

The loop (`earshot.common.worker.run_consumer`) acks only after `handle` returns, that is after the
output blob and the outcome event are durable. A job whose output already exists is not converted
again, so a redelivery after a crash only re-reports it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import structlog
from pydantic import ValidationError

from earshot.common.blobs import BlobError, BlobNotFound, BlobStore
from earshot.common.messages import (
    JOB_EVENTS_QUEUE,
    JobFailed,
    JobProgressed,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    Message,
)
from earshot.common.queue import Delivery, MessageQueue
from earshot.common.worker import PermanentError, TransientError
from earshot.converter.arguments import FfmpegConfig
from earshot.converter.convert import ConversionResult, audio_duration_seconds, convert
from earshot.converter.ffmpeg import FfmpegError

LOCK_FILE = ".owner.lock"

PROGRESS_PUBLISH_TIMEOUT_SECONDS = 5.0

_log = structlog.get_logger()


def parse_job(body: bytes) -> JobSubmitted:
    """The job a message carries; `PermanentError` when it is not a readable `JobSubmitted`."""
    try:
        return JobSubmitted.model_validate_json(body)
    except ValidationError as exc:
        raise PermanentError(f"not a JobSubmitted message: {exc.error_count()} error(s)") from exc


class ProgressReporter:
    """Publishes `JobProgressed` at most once per interval; a failed publish never fails the job."""

    def __init__(
        self,
        queue: MessageQueue,
        job_id: str,
        *,
        interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue, self._job_id = queue, job_id
        self._interval_seconds, self._clock = interval_seconds, clock
        self._last_sent: float | None = None

    async def __call__(self, percent: float) -> None:
        """Report `percent` unless one was reported less than an interval ago."""
        now = self._clock()
        if self._last_sent is not None and now - self._last_sent < self._interval_seconds:
            return
        self._last_sent = now
        event = JobProgressed(job_id=self._job_id, percent=round(percent, 1))
        try:
            async with asyncio.timeout(PROGRESS_PUBLISH_TIMEOUT_SECONDS):
                await self._queue.publish(
                    JOB_EVENTS_QUEUE,
                    event.to_bytes(),
                    message_id=f"{self._job_id}:progress:{uuid4().hex}",
                )
        except Exception as exc:
            _log.warning("converter.progress_not_published", error=str(exc) or type(exc).__name__)


class ConversionWorker:
    """Converts the jobs of the `video` queue; `handle` and `give_up` plug into `run_consumer`."""

    def __init__(
        self,
        *,
        queue: MessageQueue,
        blobs: BlobStore,
        ffmpeg: FfmpegConfig,
        work_dir: Path,
        progress_interval_seconds: float,
    ) -> None:
        self._queue, self._blobs, self._ffmpeg = queue, blobs, ffmpeg
        self._work_dir = work_dir
        self._progress_interval_seconds = progress_interval_seconds

    async def handle(self, delivery: Delivery) -> None:
        """Convert one job, or re-report it when its output already exists."""
        job = parse_job(delivery.body)
        with structlog.contextvars.bound_contextvars(job_id=job.job_id, user_id=job.user_id):
            if await self._report_existing_output(job):
                return
            await self._publish(
                JobStarted(job_id=job.job_id, attempt=delivery.attempt),
                message_id=f"{job.job_id}:started:{delivery.attempt}",
            )
            try:
                result = await self._convert_and_store(job)
            except FfmpegError as exc:
                if not exc.permanent:
                    _log.warning("converter.retryable", reason=exc.reason, stderr=exc.stderr_tail)
                    raise TransientError(exc.reason) from exc
                await self._fail(job, exc.reason, stderr_tail=exc.stderr_tail)
                return
            except BlobNotFound:
                await self._fail(job, "the input file no longer exists")
                return
            except BlobError as exc:
                raise TransientError(f"storage failed: {exc}") from exc
            await self._succeed(job, result.output_bytes, result.output_duration_seconds)

    async def give_up(self, delivery: Delivery, reason: str) -> None:
        """Fail the job for good after the last retry; a message with no job is dead-lettered."""
        try:
            job = parse_job(delivery.body)
        except PermanentError:
            # No job id to report to: keep the message where an operator can look at it.
            await delivery.dead_letter(reason=reason)
            return
        # The loop's reason names the exception class; users only need what went wrong.
        human = reason.replace("TransientError: ", "", 1)
        with structlog.contextvars.bound_contextvars(job_id=job.job_id, user_id=job.user_id):
            await self._publish(
                JobFailed(job_id=job.job_id, reason=human, permanent=False),
                message_id=f"{job.job_id}:failed",
            )

    async def _report_existing_output(self, job: JobSubmitted) -> bool:
        info = await self._blobs.stat(job.output_key)
        if info is None:
            return False
        # An earlier attempt stored the output but died before reporting it: report, don't redo.
        _log.info("converter.output_exists", output_key=job.output_key)
        async with self._blobs.local_path(job.output_key) as path:
            duration = await asyncio.to_thread(audio_duration_seconds, path)
        await self._succeed(job, info.size_bytes, duration)
        return True

    async def _convert_and_store(self, job: JobSubmitted) -> ConversionResult:
        job_dir = _make_job_dir(self._work_dir)
        try:
            output = job_dir / f"output.{job.options.format}"
            progress = ProgressReporter(
                self._queue, job.job_id, interval_seconds=self._progress_interval_seconds
            )
            async with self._blobs.local_path(job.input_key) as input_path:
                result = await convert(
                    input_path,
                    output,
                    options=job.options,
                    ffmpeg=self._ffmpeg,
                    input_duration_seconds=job.input_duration_seconds,
                    input_audio_codec=job.input_audio_codec,
                    on_progress=progress,
                )
            await self._blobs.put_file(job.output_key, output)
            return result
        finally:
            # Synchronous on purpose: it must also run when the task is being cancelled.
            shutil.rmtree(job_dir, ignore_errors=True)

    async def _succeed(
        self, job: JobSubmitted, output_bytes: int, duration_seconds: float | None
    ) -> None:
        event = JobSucceeded(
            job_id=job.job_id,
            output_key=job.output_key,
            output_bytes=output_bytes,
            output_duration_seconds=duration_seconds,
        )
        await self._publish(event, message_id=f"{job.job_id}:succeeded")
        _log.info("converter.succeeded", output_bytes=output_bytes)

    async def _fail(self, job: JobSubmitted, reason: str, *, stderr_tail: str = "") -> None:
        _log.warning("converter.failed", reason=reason, stderr_tail=stderr_tail or None)
        event = JobFailed(job_id=job.job_id, reason=reason, permanent=True)
        await self._publish(event, message_id=f"{job.job_id}:failed")

    async def _publish(self, event: Message, *, message_id: str) -> None:
        await self._queue.publish(JOB_EVENTS_QUEUE, event.to_bytes(), message_id=message_id)


def _make_job_dir(work_dir: Path) -> Path:
    # Synchronous (it takes microseconds) so no cancellation can fall between creating the
    # directory and the `try` that removes it. The job id stays out of the name: it is untrusted.
    work_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="job-", dir=work_dir))


@dataclass
class ProcessWorkDir:
    """This process's own folder under the shared work dir, locked for as long as the process lives.

    The kernel drops the lock when the process dies, even by SIGKILL, so the next converter to
    start can tell a dead converter's leftovers from a live one's and remove them at once.
    """

    path: Path
    _lock_fd: int

    @classmethod
    def claim(cls, work_dir: Path) -> ProcessWorkDir:
        """Create and lock a fresh folder for this process."""
        work_dir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"proc-{os.getpid()}-", dir=work_dir))
        fd = os.open(path / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cls(path, fd)

    def release(self) -> None:
        """Remove the folder and drop the lock (on a clean stop)."""
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)


def remove_stale_work(work_dir: Path) -> int:
    """Delete the folders of converter processes that are gone; returns how many were removed."""
    if not work_dir.is_dir():
        return 0
    removed = 0
    for entry in work_dir.glob("proc-*"):
        try:
            fd = os.open(entry / LOCK_FILE, os.O_RDWR)
        except OSError:
            continue  # a folder being created right now, or already removed
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # its owner is alive
        else:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        finally:
            os.close(fd)
    return removed
