"""ffmpeg's command line for a conversion: where the binary is, which encoder, which container.

Pure functions; `ffmpeg.py` runs the result.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

from earshot.common.messages import AudioFormat, ConversionOptions

# ffmpeg's muxer for each output format; the temporary file name then does not matter.
_MUXERS: dict[AudioFormat, str] = {
    "mp3": "mp3",
    "m4a": "ipod",
    "opus": "opus",
    "ogg": "ogg",
    "flac": "flac",
    "wav": "wav",
}
# `quality` follows LAME's VBR scale (0 best .. 9 smallest); encoders without a comparable VBR
# mode get the bitrate LAME would roughly produce at that level.
_AAC_KBPS_BY_QUALITY = (256, 224, 192, 176, 160, 144, 128, 112, 96, 80)
_OPUS_KBPS_BY_QUALITY = (192, 160, 128, 112, 96, 80, 64, 56, 48, 40)


@dataclass(frozen=True, slots=True)
class FfmpegConfig:
    """How to run ffmpeg: the binary, the wall-clock limit, the threads (0: ffmpeg decides)."""

    executable: str
    timeout_seconds: float
    threads: int = 0


def locate_ffmpeg(configured: str | None = None) -> str:
    """The configured binary, else `ffmpeg` on PATH, else the one the imageio-ffmpeg wheel ships."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise FileNotFoundError(f"ffmpeg not found at {configured!r}")
        return found
    return shutil.which("ffmpeg") or str(imageio_ffmpeg.get_ffmpeg_exe())


def can_copy_stream(options: ConversionOptions, *, input_audio_codec: str | None) -> bool:
    """True when the input's audio already is what was asked for: copy it, do not re-encode."""
    return (
        options.format == "mp3"
        and (input_audio_codec or "").lower() == "mp3"
        and not options.asks_for_reencode
    )


def codec_args(options: ConversionOptions, *, input_audio_codec: str | None = None) -> list[str]:
    """Encoder (or stream-copy) and container arguments for the requested output."""
    if can_copy_stream(options, input_audio_codec=input_audio_codec):
        return ["-c:a", "copy", "-f", "mp3"]
    return [*_encoder_args(options), "-f", _MUXERS[options.format]]


def _encoder_args(options: ConversionOptions) -> list[str]:
    bitrate, quality = options.bitrate, options.quality
    match options.format:
        case "mp3":
            vbr = str(2 if quality is None else quality)
            return ["-c:a", "libmp3lame", *(["-b:a", bitrate] if bitrate else ["-q:a", vbr])]
        case "m4a":
            kbps = _kbps(bitrate, quality, _AAC_KBPS_BY_QUALITY, default="192k")
            return ["-c:a", "aac", "-b:a", kbps, "-movflags", "+faststart"]
        case "opus":
            return ["-c:a", "libopus", "-b:a", _kbps(bitrate, quality, _OPUS_KBPS_BY_QUALITY)]
        case "ogg":
            # Vorbis' scale runs the other way (10 best .. 0 smallest).
            vbr = str(5 if quality is None else 10 - quality)
            return ["-c:a", "libvorbis", *(["-b:a", bitrate] if bitrate else ["-q:a", vbr])]
        case "flac":
            return ["-c:a", "flac"]
        case "wav":
            return ["-c:a", "pcm_s16le"]


def _kbps(
    bitrate: str | None, quality: int | None, by_quality: Sequence[int], default: str = "128k"
) -> str:
    if bitrate:
        return bitrate
    return default if quality is None else f"{by_quality[quality]}k"


def build_args(
    config: FfmpegConfig,
    *,
    input_path: Path,
    output_path: Path,
    options: ConversionOptions,
    input_audio_codec: str | None = None,
) -> list[str]:
    """The ffmpeg command line: the input's first audio stream, no video, progress on stdout."""
    threads = ["-threads", str(config.threads)] if config.threads else []
    # `file:` keeps a path containing ':' from being read as a protocol; the whitelist keeps a
    # playlist-like upload from making ffmpeg open network URLs.
    return [
        config.executable,
        "-hide_banner", "-nostdin", "-y",
        "-protocol_whitelist", "file",
        "-i", f"file:{input_path}",
        "-vn", "-map", "0:a:0",
        *codec_args(options, input_audio_codec=input_audio_codec),
        *threads,
        "-progress", "pipe:1", "-nostats",
        f"file:{output_path}",
    ]  # fmt: skip
