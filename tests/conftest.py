"""Fixtures shared by every tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import media


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of test media generated once per run."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def h264_mp4(media_dir: Path) -> Path:
    """A 3-second H.264/AAC mp4."""
    return media.h264_aac_mp4(media_dir / "video.mp4")


@pytest.fixture(scope="session")
def vp9_mkv(media_dir: Path) -> Path:
    """A 3-second VP9/Opus mkv."""
    return media.vp9_opus_mkv(media_dir / "video.mkv")


@pytest.fixture(scope="session")
def silent_mp4(media_dir: Path) -> Path:
    """A video with no audio track."""
    return media.silent_video(media_dir / "silent.mp4")


@pytest.fixture(scope="session")
def truncated_mp4(media_dir: Path, h264_mp4: Path) -> Path:
    """The first 30 % of an mp4 (its index is missing)."""
    return media.truncated(h264_mp4, media_dir / "truncated.mp4")


@pytest.fixture(scope="session")
def text_file(media_dir: Path) -> Path:
    """A file that is not media at all."""
    return media.not_media(media_dir / "notes.mp4")
