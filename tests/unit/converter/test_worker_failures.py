"""How the converter fails: bad input, poison messages, transient errors, time limits, outages."""

from __future__ import annotations

import signal
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.messages import (
    JOBS_QUEUE,
    JobFailed,
    JobStarted,
    JobSucceeded,
)
from earshot.common.queue import QueueError
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.converter.arguments import FfmpegConfig, locate_ffmpeg
from earshot.converter.worker import (
    ConversionWorker,
    ProcessWorkDir,
    ProgressReporter,
    remove_stale_work,
)
from tests.unit.converter.conftest import LONG_SECONDS
from tests.unit.converter.support import (
    collect_events,
    finished,
    job_dirs,
    make_worker,
    queue_is_empty,
    running,
    stray_processes,
    submit,
)


async def test_a_poison_message_is_dead_lettered_and_the_loop_goes_on(
    queue: EmbeddedQueue, blobs: FolderBlobStore, work_dir: Path, media_dir: Path
) -> None:
    await queue.publish(JOBS_QUEUE, b"{not json", message_id="garbage")
    await queue.publish(JOBS_QUEUE, b'{"job_id": "x"}', message_id="incomplete")
    job = await submit(queue, blobs, media_dir / "vp9_opus.mkv")
    async with running(queue, make_worker(queue, blobs, work_dir)):
        events = await collect_events(queue, finished({job.job_id}))
    assert isinstance(events[-1], JobSucceeded)
    dead = await queue.dead_letters(JOBS_QUEUE)
    assert sorted(message_id for message_id, _, _ in dead) == ["garbage", "incomplete"]
    assert all("not a JobSubmitted message" in reason for _, _, reason in dead)


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ("silent.mp4", "the video has no audio track"),
        ("not_media", "the file is not a readable media file"),
        (None, "the input file no longer exists"),
    ],
)
async def test_bad_input_fails_the_job_at_once(
    sample: str | None,
    reason: str,
    queue: EmbeddedQueue,
    blobs: FolderBlobStore,
    work_dir: Path,
    media_dir: Path,
) -> None:
    job = await submit(queue, blobs, media_dir / sample if sample else None)
    async with running(queue, make_worker(queue, blobs, work_dir)):
        events = await collect_events(queue, finished({job.job_id}))
    assert [type(e) for e in events] == [JobStarted, JobFailed]
    failed = events[-1]
    assert isinstance(failed, JobFailed)
    assert (failed.reason, failed.permanent) == (reason, True)
    assert await blobs.stat(job.output_key) is None
    assert await queue_is_empty(queue, JOBS_QUEUE)
    assert job_dirs(work_dir) == []


async def test_transient_failures_back_off_then_give_up(
    queue: EmbeddedQueue, blobs: FolderBlobStore, work_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    # Given an ffmpeg that fails for a reason that may pass (not the input's fault)
    broken = tmp_path / "broken-ffmpeg"
    broken.write_text("#!/bin/sh\necho 'Conversion failed: device busy' >&2\nexit 1\n")
    broken.chmod(0o755)
    worker = make_worker(
        queue, blobs, work_dir, ffmpeg=FfmpegConfig(executable=str(broken), timeout_seconds=10)
    )
    job = await submit(queue, blobs, media_dir / "h264_aac.mp4")

    # When the converter works on it with at most 3 attempts
    async with running(queue, worker, max_attempts=3, backoff_base_seconds=0.2):
        events = await collect_events(queue, finished({job.job_id}))

    # Then it was tried 3 times, with growing pauses, and then failed as not permanent
    starts = [e for e in events if isinstance(e, JobStarted)]
    assert [s.attempt for s in starts] == [1, 2, 3]
    pauses = [(b.occurred_at - a.occurred_at).total_seconds() for a, b in pairwise(starts)]
    assert pauses[0] >= 0.1 and pauses[1] >= 0.2  # jittered between half and all of 0.2, 0.4
    failed = events[-1]
    assert isinstance(failed, JobFailed)
    assert not failed.permanent
    assert failed.reason.startswith("gave up after 3 attempts: ffmpeg failed with exit status 1")
    assert "device busy" in failed.reason
    assert await queue_is_empty(queue, JOBS_QUEUE)
    assert job_dirs(work_dir) == []


async def test_the_time_limit_fails_the_job_and_cleans_up(
    queue: EmbeddedQueue, blobs: FolderBlobStore, work_dir: Path, long_audio: Path
) -> None:
    ffmpeg = FfmpegConfig(executable=locate_ffmpeg(), timeout_seconds=0.3)
    job = await submit(queue, blobs, long_audio, input_duration_seconds=LONG_SECONDS)
    async with running(queue, make_worker(queue, blobs, work_dir, ffmpeg=ffmpeg)):
        events = await collect_events(queue, finished({job.job_id}))
    failed = events[-1]
    assert isinstance(failed, JobFailed)
    assert failed.permanent
    assert "longer than the limit of 0.3 seconds" in failed.reason
    assert stray_processes() == []
    assert job_dirs(work_dir) == []


class _FailingQueue:
    """Publishing always fails, as during a broker outage."""

    def __init__(self) -> None:
        self.attempts = 0

    async def publish(self, queue: str, body: bytes, *, message_id: str) -> None:
        self.attempts += 1
        raise QueueError("broker down")


async def test_progress_publish_failures_never_fail_the_job() -> None:
    failing = _FailingQueue()
    now = [0.0]
    reporter = ProgressReporter(
        failing,  # type: ignore[arg-type]
        "job-1",
        interval_seconds=1.0,
        clock=lambda: now[0],
    )
    await reporter(10.0)
    now[0] = 0.5
    await reporter(20.0)  # throttled: within the interval
    now[0] = 1.2
    await reporter(30.0)
    assert failing.attempts == 2


class _FlakyPublisher:
    """The real queue, except that the first `JobSucceeded` publish fails (broker hiccup)."""

    def __init__(self, inner: EmbeddedQueue) -> None:
        self._inner = inner
        self.failed = False

    async def publish(self, queue: str, body: bytes, *, message_id: str) -> None:
        if message_id.endswith(":succeeded") and not self.failed:
            self.failed = True
            raise QueueError("broker hiccup")
        await self._inner.publish(queue, body, message_id=message_id)


async def test_a_failed_success_report_is_retried_without_converting_again(
    queue: EmbeddedQueue, blobs: FolderBlobStore, work_dir: Path, media_dir: Path
) -> None:
    # Given a broker that refuses the success report once
    flaky = _FlakyPublisher(queue)
    worker = ConversionWorker(
        queue=flaky,  # type: ignore[arg-type]
        blobs=blobs,
        ffmpeg=FfmpegConfig(executable=locate_ffmpeg(), timeout_seconds=60),
        work_dir=work_dir,
        progress_interval_seconds=0,
    )
    job = await submit(queue, blobs, media_dir / "h264_aac.mp4")

    # When the converter works on the job
    async with running(queue, worker, backoff_base_seconds=0.2):
        events = await collect_events(queue, finished({job.job_id}))

    # Then the message came back after a backoff, and the second delivery only reported
    assert flaky.failed
    starts = [e for e in events if isinstance(e, JobStarted)]
    assert [s.attempt for s in starts] == [1]
    succeeded = events[-1]
    assert isinstance(succeeded, JobSucceeded)
    assert (succeeded.occurred_at - starts[0].occurred_at).total_seconds() >= 0.1
    assert await queue_is_empty(queue, JOBS_QUEUE)


def test_work_dirs_of_dead_converters_are_removed_and_live_ones_kept(work_dir: Path) -> None:
    # given a live converter's folder (this process) and one whose owner was SIGKILLed
    live = ProcessWorkDir.claim(work_dir)
    code = (
        "import os, sys; from pathlib import Path; "
        "from earshot.converter.worker import ProcessWorkDir; "
        "d = ProcessWorkDir.claim(Path(sys.argv[1])); "
        "(d.path / 'job-x').mkdir(); (d.path / 'job-x' / 'output.mp3').write_bytes(b'x'); "
        "os.kill(os.getpid(), 9)"
    )
    dead = subprocess.run([sys.executable, "-c", code, str(work_dir)], check=False)
    assert dead.returncode == -signal.SIGKILL
    (work_dir / "unrelated").mkdir()
    assert len(list(work_dir.glob("proc-*"))) == 2

    # when the next converter starts, then only the dead one's leftovers go
    try:
        assert remove_stale_work(work_dir) == 1
        assert sorted(p.name for p in work_dir.iterdir()) == sorted([live.path.name, "unrelated"])
    finally:
        live.release()
    assert not live.path.exists()
    assert remove_stale_work(work_dir / "missing") == 0
