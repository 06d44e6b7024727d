"""The only module that spawns ffmpeg: runs it, follows its progress, classifies its failures.

ffmpeg runs as an asyncio subprocess in its own session, so the event loop (and with it the queue
lease renewal) keeps running however long a conversion takes, and the whole process group can be
killed on a timeout or cancellation. Output is read incrementally; nothing grows with the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

STDERR_TAIL_LINES = 50
MAX_LINE_BYTES = 4096
READ_CHUNK_BYTES = 64 * 1024

OutTimeCallback = Callable[[float], Awaitable[None]]

# (what ffmpeg says, what the user is told). Order matters: the first match wins.
_INPUT_PROBLEMS: tuple[tuple[str, str], ...] = (
    ("matches no streams", "the video has no audio track"),
    ("does not contain any stream", "the video has no audio track"),
    ("moov atom not found", "the file is truncated or not a readable media file"),
    ("Invalid data found when processing input", "the file is not a readable media file"),
    ("no decoder found", "the audio codec of the file is not supported"),
    ("Decoder not found", "the audio codec of the file is not supported"),
)


class FfmpegError(Exception):
    """ffmpeg produced no output; `reason` is for humans, `permanent` rules out a retry."""

    permanent = False

    def __init__(self, reason: str, *, stderr_tail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stderr_tail = stderr_tail


class InputError(FfmpegError):
    """The input itself is unusable (no audio, not media, truncated): retrying cannot help."""

    permanent = True


class ConversionTimeout(FfmpegError):
    """The wall-clock limit was reached and ffmpeg was killed."""

    # An input that needs longer than the limit will need it again; retrying multiplies the cost.
    permanent = True


class FfmpegFailed(FfmpegError):
    """Any other failure (killed by a signal, disk full...): worth retrying."""


class ProgressParser:
    """Reads ffmpeg's `-progress` key=value lines; `out_time_seconds` is the latest position."""

    def __init__(self) -> None:
        self.out_time_seconds: float | None = None

    def feed(self, line: str) -> bool:
        """Take one line; True when it closes a progress block (time to report)."""
        key, _, value = line.strip().partition("=")
        # `out_time_ms` is in microseconds too (an old ffmpeg naming slip kept for compatibility).
        if key in ("out_time_us", "out_time_ms") and value.lstrip("-").isdigit():
            self.out_time_seconds = max(0, int(value)) / 1_000_000
        return key == "progress"


async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """Lines of a stream, read in chunks; an endless line is cut so memory stays bounded."""
    pending = b""
    while chunk := await stream.read(READ_CHUNK_BYTES):
        *complete, pending = (pending + chunk).replace(b"\r", b"\n").split(b"\n")
        for line in complete:
            yield line[:MAX_LINE_BYTES].decode(errors="replace")
        pending = pending[:MAX_LINE_BYTES]
    if pending:
        yield pending.decode(errors="replace")


async def _collect_tail(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    async for line in _lines(stream):
        if line.strip():
            tail.append(line)


async def _follow_progress(
    stream: asyncio.StreamReader, parser: ProgressParser, on_out_time: OutTimeCallback | None
) -> None:
    async for line in _lines(stream):
        if parser.feed(line) and on_out_time is not None and parser.out_time_seconds is not None:
            await on_out_time(parser.out_time_seconds)


_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's `prctl`, resolved before any fork (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook so that ffmpeg is killed if the converter dies, even by SIGKILL.

    Without it an orphaned ffmpeg keeps converting for up to the time limit, competing with the
    conversion of the redelivered job. The hook only calls a pre-resolved C function: no Python
    locks are taken between fork and exec.
    """
    prctl, parent = _prctl(), os.getpid()
    if prctl is None:
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the hook ran
            os._exit(1)

    return hook


async def _kill_and_reap(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


def classify_failure(returncode: int, stderr_lines: Sequence[str]) -> FfmpegError:
    """Turn a failed exit into a permanent input problem or a transient failure."""
    tail = "\n".join(stderr_lines)
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else ""
        return FfmpegFailed(f"ffmpeg was killed by signal {name or -returncode}", stderr_tail=tail)
    lowered = tail.lower()
    for needle, reason in _INPUT_PROBLEMS:
        if needle.lower() in lowered:
            return InputError(reason, stderr_tail=tail)
    if "no space left on device" in lowered:
        return FfmpegFailed("the converter ran out of disk space", stderr_tail=tail)
    last = stderr_lines[-1].strip() if stderr_lines else "no error message"
    return FfmpegFailed(f"ffmpeg failed with exit status {returncode}: {last}", stderr_tail=tail)


async def run_ffmpeg(
    args: Sequence[str], *, timeout_seconds: float, on_out_time: OutTimeCallback | None = None
) -> float | None:
    """Run ffmpeg to completion; return the final output time in seconds, or raise `FfmpegError`.

    The process (group) is killed and reaped on timeout, cancellation or any error.
    """
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent_hook(),
    )
    assert process.stdout is not None and process.stderr is not None
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    parser = ProgressParser()
    stderr_task = asyncio.create_task(_collect_tail(process.stderr, tail))
    deadline = asyncio.timeout(timeout_seconds)
    try:
        async with deadline:
            await _follow_progress(process.stdout, parser, on_out_time)
            returncode = await process.wait()
            await stderr_task
    except TimeoutError:
        if not deadline.expired():
            raise
        raise ConversionTimeout(
            f"the conversion took longer than the limit of {timeout_seconds:g} seconds",
            stderr_tail="\n".join(tail),
        ) from None
    finally:
        await _kill_and_reap(process)
        stderr_task.cancel()
        await asyncio.gather(stderr_task, return_exceptions=True)
    if returncode != 0:
        raise classify_failure(returncode, list(tail))
    return parser.out_time_seconds
