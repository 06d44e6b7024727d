"""ffmpeg's command line: encoders, containers, stream copy, locating the binary."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from earshot.common.messages import ConversionOptions
from earshot.converter.arguments import FfmpegConfig, build_args, codec_args, locate_ffmpeg

CONFIG = FfmpegConfig(executable="/usr/bin/ffmpeg", timeout_seconds=60)


def _args(options: ConversionOptions, codec: str | None = "aac") -> list[str]:
    return build_args(
        CONFIG,
        input_path=Path("/in/video"),
        output_path=Path("/tmp/out"),
        options=options,
        input_audio_codec=codec,
    )


def test_default_is_mp3_vbr_quality_2_audio_only() -> None:
    args = _args(ConversionOptions())
    assert args[:4] == ["/usr/bin/ffmpeg", "-hide_banner", "-nostdin", "-y"]
    assert args[args.index("-i") + 1] == "file:/in/video"
    joined = " ".join(args)
    assert "-vn -map 0:a:0 -c:a libmp3lame -q:a 2 -f mp3" in joined
    assert "-progress pipe:1 -nostats" in joined
    assert args[-1] == "file:/tmp/out"
    assert "-threads" not in args


def test_bitrate_gives_cbr_and_quality_gives_vbr() -> None:
    assert codec_args(ConversionOptions(bitrate="128k")) == [
        "-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3",
    ]  # fmt: skip
    assert codec_args(ConversionOptions(quality=6)) == [
        "-c:a", "libmp3lame", "-q:a", "6", "-f", "mp3",
    ]  # fmt: skip


def test_mp3_input_is_copied_unless_an_option_asks_for_reencoding() -> None:
    assert codec_args(ConversionOptions(), input_audio_codec="mp3") == [
        "-c:a", "copy", "-f", "mp3",
    ]  # fmt: skip
    assert codec_args(ConversionOptions(), input_audio_codec="MP3")[:2] == ["-c:a", "copy"]
    assert "libmp3lame" in codec_args(ConversionOptions(bitrate="192k"), input_audio_codec="mp3")
    assert "libmp3lame" in codec_args(ConversionOptions(quality=0), input_audio_codec="mp3")
    assert "libmp3lame" in codec_args(ConversionOptions(), input_audio_codec=None)
    # Copying applies to MP3 output only.
    assert "flac" in codec_args(ConversionOptions(format="flac"), input_audio_codec="mp3")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ConversionOptions(format="m4a"),
            ["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", "-f", "ipod"],
        ),
        (ConversionOptions(format="m4a", bitrate="96k"), ["-c:a", "aac", "-b:a", "96k"]),
        (ConversionOptions(format="opus"), ["-c:a", "libopus", "-b:a", "128k", "-f", "opus"]),
        (ConversionOptions(format="opus", quality=0), ["-c:a", "libopus", "-b:a", "192k"]),
        (ConversionOptions(format="ogg"), ["-c:a", "libvorbis", "-q:a", "5", "-f", "ogg"]),
        (ConversionOptions(format="ogg", quality=0), ["-c:a", "libvorbis", "-q:a", "10"]),
        (ConversionOptions(format="ogg", bitrate="160k"), ["-c:a", "libvorbis", "-b:a", "160k"]),
        (ConversionOptions(format="flac"), ["-c:a", "flac", "-f", "flac"]),
        (ConversionOptions(format="wav"), ["-c:a", "pcm_s16le", "-f", "wav"]),
    ],
)
def test_other_formats(options: ConversionOptions, expected: list[str]) -> None:
    args = codec_args(options)
    assert args[: len(expected)] == expected


def test_threads_are_passed_when_set() -> None:
    config = FfmpegConfig(executable="ffmpeg", timeout_seconds=1, threads=2)
    args = build_args(
        config, input_path=Path("/i"), output_path=Path("/o"), options=ConversionOptions()
    )
    assert args[args.index("-threads") + 1] == "2"


def test_locate_prefers_configured_then_path_then_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "my-ffmpeg"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert locate_ffmpeg(str(fake)) == str(fake)
    with pytest.raises(FileNotFoundError):
        locate_ffmpeg(str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert Path(locate_ffmpeg()).is_file()  # not on PATH: the wheel's binary
    shutil.copy(fake, tmp_path / "ffmpeg")
    assert locate_ffmpeg() == str(tmp_path / "ffmpeg")
