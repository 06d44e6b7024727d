"""Running ffmpeg: progress parsing, failure classification, bounded output, process clean-up."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from earshot.converter.ffmpeg import (
    STDERR_TAIL_LINES,
    ConversionTimeout,
    FfmpegFailed,
    InputError,
    ProgressParser,
    classify_failure,
    run_ffmpeg,
)
from tests.unit.converter.support import stray_processes, wait_until_gone


def test_progress_parser_reads_microseconds_and_block_ends() -> None:
    parser = ProgressParser()
    assert parser.feed("out_time_us=N/A") is False
    assert parser.out_time_seconds is None
    assert parser.feed("out_time_us=1500000") is False
    assert parser.feed("out_time_ms=2500000") is False
    assert parser.out_time_seconds == 2.5
    assert parser.feed("progress=continue") is True
    assert parser.feed("out_time_us=-5") is False
    assert parser.out_time_seconds == 0
    assert parser.feed("progress=end\n") is True


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("Stream map '0:a:0' matches no streams.", "the video has no audio track"),
        ("Output file #0 does not contain any stream", "the video has no audio track"),
        ("[in#0] moov atom not found", "the file is truncated or not a readable media file"),
        (
            "Error opening input: Invalid data found when processing input",
            "the file is not a readable media file",
        ),
    ],
)
def test_input_problems_are_permanent_with_a_human_reason(stderr: str, reason: str) -> None:
    error = classify_failure(1, ["Input #0, mov", stderr, "Error opening output files"])
    assert isinstance(error, InputError)
    assert error.permanent
    assert error.reason == reason
    assert stderr in error.stderr_tail


def test_other_failures_are_transient() -> None:
    killed = classify_failure(-signal.SIGKILL, [])
    assert isinstance(killed, FfmpegFailed)
    assert not killed.permanent
    assert "SIGKILL" in killed.reason
    disk = classify_failure(1, ["av_interleaved_write_frame(): No space left on device"])
    assert not disk.permanent
    assert disk.reason == "the converter ran out of disk space"
    other = classify_failure(69, ["something odd"])
    assert not other.permanent
    assert other.reason == "ffmpeg failed with exit status 69: something odd"


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-ffmpeg"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _descendants() -> list[psutil.Process]:
    return stray_processes()


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    # Given a "ffmpeg" that starts a grandchild and hangs
    exe = _script(tmp_path, "sleep 300 &\necho out_time_us=1000000\necho progress=continue\nwait\n")
    seen: list[float] = []

    async def on_out_time(seconds: float) -> None:
        seen.append(seconds)

    # When the time limit passes
    with pytest.raises(ConversionTimeout) as caught:
        await run_ffmpeg([exe], timeout_seconds=0.5, on_out_time=on_out_time)

    # Then it failed permanently, and neither the child nor the grandchild survived
    assert caught.value.permanent
    assert "0.5 seconds" in caught.value.reason
    assert seen == [1.0]
    assert _descendants() == []


async def test_cancellation_kills_and_reaps(tmp_path: Path) -> None:
    exe = _script(tmp_path, "sleep 300 &\nwait\n")
    task = asyncio.create_task(run_ffmpeg([exe], timeout_seconds=60))
    await asyncio.sleep(0.3)
    assert _descendants() != []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _descendants() == []


async def test_a_failing_progress_callback_kills_ffmpeg(tmp_path: Path) -> None:
    exe = _script(tmp_path, "echo out_time_us=1\necho progress=continue\nsleep 300\n")

    async def broken(_seconds: float) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await run_ffmpeg([exe], timeout_seconds=60, on_out_time=broken)
    assert _descendants() == []


async def test_stderr_is_bounded_to_the_last_lines(tmp_path: Path) -> None:
    # 5000 lines, one of them endless: memory stays bounded and the tail holds the last lines.
    exe = _script(
        tmp_path,
        "i=0; while [ $i -lt 5000 ]; do echo line $i >&2; i=$((i+1)); done\n"
        "head -c 300000 /dev/zero | tr '\\0' x >&2\necho >&2\necho the end >&2\nexit 3\n",
    )
    with pytest.raises(FfmpegFailed) as caught:
        await run_ffmpeg([exe], timeout_seconds=60)
    lines = caught.value.stderr_tail.splitlines()
    assert len(lines) == STDERR_TAIL_LINES
    assert lines[-1] == "the end"
    assert max(len(line) for line in lines) <= 4096
    assert caught.value.reason == "ffmpeg failed with exit status 3: the end"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_ffmpeg_dies_with_a_killed_converter(tmp_path: Path) -> None:
    # Given a converter process running a long "ffmpeg"
    exe = _script(tmp_path, "exec sleep 300\n")
    code = (
        "import asyncio, sys\n"
        "from earshot.converter.ffmpeg import run_ffmpeg\n"
        f"asyncio.run(run_ffmpeg([{exe!r}], timeout_seconds=600))\n"
    )
    converter = subprocess.Popen([sys.executable, "-c", code])
    try:
        ffmpeg = _wait_for_child(psutil.Process(converter.pid))
        # When the converter is killed outright (no clean-up code runs)
        converter.kill()
        converter.wait(timeout=10)
        # Then its ffmpeg does not live on as an orphan
        wait_until_gone([ffmpeg])
    finally:
        converter.kill()
        converter.wait(timeout=10)


def _wait_for_child(parent: psutil.Process) -> psutil.Process:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        children = parent.children()
        if children and children[0].name() == "sleep":
            return children[0]
        time.sleep(0.05)
    raise AssertionError("the fake ffmpeg did not start")
