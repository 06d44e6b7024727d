"""The converter as a service: `serve` in-process, `run` as a process that is stopped or killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.messages import JOBS_QUEUE, JobProgressed, JobStarted, JobSucceeded
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.converter.main import serve
from earshot.converter.settings import ConverterSettings
from tests.unit.converter.conftest import LONG_SECONDS
from tests.unit.converter.support import (
    collect_events,
    finished,
    job_dirs,
    queue_is_empty,
    submit,
    wait_until_gone,
)

RUN_CONVERTER = (
    "from earshot.converter.main import run\n"
    "from earshot.converter.settings import ConverterSettings\n"
    "run(ConverterSettings())\n"
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
async def queue(data_dir: Path) -> AsyncIterator[EmbeddedQueue]:
    q = EmbeddedQueue(data_dir / "queue.db", poll_seconds=0.02, lease_seconds=2)
    yield q
    await q.close()


@pytest.fixture
def blobs(data_dir: Path) -> FolderBlobStore:
    return FolderBlobStore(data_dir / "blobs")


@pytest.fixture
def converters(data_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Converter processes started by a test; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(timeout=10)


def start_converter(
    started: list[subprocess.Popen[bytes]], data_dir: Path, **settings: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EARSHOT_DATA_DIR": str(data_dir),
        "EARSHOT_QUEUE_POLL_SECONDS": "0.05",
        "EARSHOT_QUEUE_LEASE_SECONDS": "2",
        "EARSHOT_PROGRESS_INTERVAL_SECONDS": "0",
        "EARSHOT_LOG_FORMAT": "json",
        **{f"EARSHOT_{name.upper()}": value for name, value in settings.items()},
    }
    log = data_dir.parent / f"converter-{len(started)}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-c", RUN_CONVERTER], env=env, stderr=stderr)
    started.append(process)
    _wait_for_log(log, "worker.started", process)
    return process


def _wait_for_log(log: Path, event: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until the converter logged `event` (its signal handlers are then in place)."""
    deadline = time.monotonic() + 30
    while event not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, f"the converter did not log {event}"
        time.sleep(0.05)


def ffmpeg_children(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return [p for p in psutil.Process(process.pid).children(recursive=True) if "ffmpeg" in p.name()]


async def test_serve_converts_jobs_until_stopped(
    data_dir: Path, queue: EmbeddedQueue, blobs: FolderBlobStore, media_dir: Path
) -> None:
    settings = ConverterSettings(data_dir=data_dir, queue_poll_seconds=0.02)
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop=stop))
    job = await submit(queue, blobs, media_dir / "h264_aac.mp4")
    events = await collect_events(queue, finished({job.job_id}))
    stop.set()
    await asyncio.wait_for(service, timeout=10)
    assert isinstance(events[-1], JobSucceeded)
    assert job_dirs(settings.resolved_work_dir) == []


async def test_a_killed_converter_s_job_is_picked_up_again_and_completes(
    data_dir: Path,
    queue: EmbeddedQueue,
    blobs: FolderBlobStore,
    long_audio: Path,
    converters: list[subprocess.Popen[bytes]],
) -> None:
    # Given a converter in the middle of a long job
    first = start_converter(converters, data_dir)
    job = await submit(queue, blobs, long_audio, input_duration_seconds=LONG_SECONDS)
    await collect_events(queue, lambda events: isinstance(events[-1], JobProgressed))
    ffmpeg = ffmpeg_children(first)
    assert ffmpeg

    # When it is killed outright
    first.kill()
    first.wait(timeout=10)

    # Then its ffmpeg dies with it, and another converter takes the job up and completes it
    wait_until_gone(ffmpeg)
    start_converter(converters, data_dir)
    events = await collect_events(queue, finished({job.job_id}))
    assert [e.attempt for e in events if isinstance(e, JobStarted)] == [2]
    assert isinstance(events[-1], JobSucceeded)
    assert await blobs.stat(job.output_key) is not None


async def test_sigterm_hands_the_running_job_back_and_exits_cleanly(
    data_dir: Path,
    queue: EmbeddedQueue,
    blobs: FolderBlobStore,
    long_audio: Path,
    converters: list[subprocess.Popen[bytes]],
) -> None:
    # Given a converter with a short grace in the middle of a long job
    converter = start_converter(converters, data_dir, shutdown_grace_seconds="0.2")
    job = await submit(queue, blobs, long_audio, input_duration_seconds=LONG_SECONDS)
    await collect_events(queue, lambda events: isinstance(events[-1], JobProgressed))
    ffmpeg = ffmpeg_children(converter)

    # When it is asked to stop
    converter.send_signal(signal.SIGTERM)

    # Then it exits 0, leaves no ffmpeg and no temp files, and the job waits for another converter
    assert await asyncio.to_thread(converter.wait, 20) == 0
    wait_until_gone(ffmpeg)
    assert job_dirs(data_dir / "tmp" / "converter") == []
    assert await blobs.stat(job.output_key) is None
    assert not await queue_is_empty(queue, JOBS_QUEUE, wait_seconds=5)


async def test_sigterm_when_idle_exits_at_once(
    data_dir: Path, converters: list[subprocess.Popen[bytes]]
) -> None:
    converter = start_converter(converters, data_dir)
    started = time.monotonic()
    converter.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(converter.wait, 20) == 0
    assert time.monotonic() - started < 5
