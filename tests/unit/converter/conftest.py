"""Fixtures of the converter tests: media made once per session, ffmpeg, queue, blobs, work dir."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.converter.arguments import FfmpegConfig, locate_ffmpeg
from tests import media

LONG_SECONDS = 600


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding every sample, generated once."""
    folder = tmp_path_factory.mktemp("media")
    media.h264_aac_mp4(folder / "h264_aac.mp4")
    media.vp9_opus_mkv(folder / "vp9_opus.mkv")
    media.mp3_audio_mp4(folder / "mp3_audio.mp4")
    media.silent_video(folder / "silent.mp4")
    media.truncated(folder / "h264_aac.mp4", folder / "truncated.mp4")
    # Blobs have no file extension, so ffmpeg must probe the content as it will in service.
    media.not_media(folder / "not_media")
    return folder


@pytest.fixture(scope="session")
def long_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten minutes of PCM tone: instant to make, seconds to encode (several progress ticks)."""
    path = tmp_path_factory.mktemp("long") / "long.wav"
    subprocess.run(
        [
            media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={LONG_SECONDS}",
            "-c:a", "pcm_s16le", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture
def ffmpeg_config() -> FfmpegConfig:
    """The real ffmpeg with a generous limit."""
    return FfmpegConfig(executable=locate_ffmpeg(), timeout_seconds=60)


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[EmbeddedQueue]:
    """The embedded queue in a fresh file, polled often (fast tests)."""
    q = EmbeddedQueue(tmp_path / "queue.db", poll_seconds=0.02, lease_seconds=3)
    yield q
    await q.close()


@pytest.fixture
def blobs(tmp_path: Path) -> FolderBlobStore:
    """A folder blob store in a fresh directory."""
    return FolderBlobStore(tmp_path / "blobs")


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """The converter's temporary directory (not created: the worker makes it)."""
    return tmp_path / "work"
