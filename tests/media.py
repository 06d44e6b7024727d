"""Test media made at test time by ffmpeg's lavfi sources (no media binaries in the repo)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg


def ffmpeg_exe() -> str:
    """System ffmpeg when on PATH, else the binary the imageio-ffmpeg wheel ships."""
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


def _run(args: list[str]) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=600,
    )


def h264_aac_mp4(path: Path, *, seconds: float = 3, size: str = "320x240", rate: int = 25) -> Path:
    """An H.264 video with an AAC sine tone."""
    _run([
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", str(path),
    ])  # fmt: skip
    return path


def vp9_opus_mkv(path: Path, *, seconds: float = 3) -> Path:
    """A VP9 video with an Opus tone, in Matroska."""
    _run([
        "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=15:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=660:sample_rate=48000:duration={seconds}",
        "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "100k",
        "-c:a", "libopus", "-shortest", str(path),
    ])  # fmt: skip
    return path


def mp3_audio_mp4(path: Path, *, seconds: float = 3) -> Path:
    """A video whose audio already is MP3 (the converter may copy it)."""
    _run([
        "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=15:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "libmp3lame", "-q:a", "4", "-shortest", str(path),
    ])  # fmt: skip
    return path


def silent_video(path: Path, *, seconds: float = 2) -> Path:
    """A video with no audio track at all."""
    _run([
        "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=15:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    ])  # fmt: skip
    return path


def tag(source: Path, path: Path, *, title: str) -> Path:
    """A copy of `source` whose container metadata carries `title` (streams copied as they are)."""
    _run(["-i", str(source), "-c", "copy", "-metadata", f"title={title}", str(path)])
    return path


def truncated(source: Path, path: Path, *, keep_fraction: float = 0.3) -> Path:
    """The first part of a real media file: a corrupt upload."""
    data = source.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep_fraction))])
    return path


def not_media(path: Path) -> Path:
    """A text file pretending to be a video."""
    path.write_text("this is not a video\n" * 200)
    return path
