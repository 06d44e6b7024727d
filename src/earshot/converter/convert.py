"""One conversion as a plain async function: a file in, an audio file out. Knows no queues."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import av

from earshot.common.messages import ConversionOptions
from earshot.converter.arguments import FfmpegConfig, build_args, can_copy_stream
from earshot.converter.ffmpeg import FfmpegFailed, run_ffmpeg

ProgressCallback = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConversionResult:
    """What a finished conversion produced."""

    output_bytes: int
    output_duration_seconds: float | None
    stream_copied: bool


def progress_percent(out_time_seconds: float, duration_seconds: float) -> float:
    """Position as a percentage of the input's duration, within 0..100."""
    return min(100.0, max(0.0, 100.0 * out_time_seconds / duration_seconds))


async def convert(
    input_path: Path,
    output_path: Path,
    *,
    options: ConversionOptions,
    ffmpeg: FfmpegConfig,
    input_duration_seconds: float | None = None,
    input_audio_codec: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> ConversionResult:
    """Convert `input_path`'s first audio stream into `output_path`; raises `FfmpegError`.

    `on_progress` receives non-decreasing percentages, only when the input's duration is known.
    """
    args = build_args(
        ffmpeg,
        input_path=input_path,
        output_path=output_path,
        options=options,
        input_audio_codec=input_audio_codec,
    )
    reported = -1.0

    async def report(out_time_seconds: float) -> None:
        nonlocal reported
        if on_progress is None or not input_duration_seconds or input_duration_seconds <= 0:
            return
        percent = progress_percent(out_time_seconds, input_duration_seconds)
        if percent > reported:
            reported = percent
            await on_progress(percent)

    out_time = await run_ffmpeg(args, timeout_seconds=ffmpeg.timeout_seconds, on_out_time=report)
    try:
        output_bytes = (await asyncio.to_thread(output_path.stat)).st_size
    except FileNotFoundError:
        raise FfmpegFailed("ffmpeg exited without writing the output file") from None
    return ConversionResult(
        output_bytes=output_bytes,
        output_duration_seconds=out_time,
        stream_copied=can_copy_stream(options, input_audio_codec=input_audio_codec),
    )


def audio_duration_seconds(path: Path) -> float | None:
    """The duration of an audio file read from its headers (PyAV), None when it cannot be told."""
    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return float(container.duration / av.time_base)
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except (av.FFmpegError, IndexError, OSError):
        pass
    return None
