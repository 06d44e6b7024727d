"""`convert` with the real ffmpeg on media generated at test time; outputs checked with PyAV."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import pytest

from earshot.common.messages import AudioFormat, ConversionOptions
from earshot.converter.arguments import FfmpegConfig
from earshot.converter.convert import convert
from earshot.converter.ffmpeg import ConversionTimeout, InputError
from tests.unit.converter.conftest import LONG_SECONDS
from tests.unit.converter.support import stray_processes


def _audio_facts(path: Path) -> tuple[str, float, list[bytes]]:
    """(codec, duration in seconds, audio packets) of a file's only audio stream."""
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1
        assert len(container.streams.video) == 0
        stream = container.streams.audio[0]
        packets = [bytes(p) for p in container.demux(stream) if p.size]
        return stream.codec.canonical_name, container.duration / av.time_base, packets


def _input_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


async def test_h264_aac_mp4_becomes_vbr_mp3(
    media_dir: Path, tmp_path: Path, ffmpeg_config: FfmpegConfig
) -> None:
    out = tmp_path / "out.mp3"
    result = await convert(
        media_dir / "h264_aac.mp4",
        out,
        options=ConversionOptions(),
        ffmpeg=ffmpeg_config,
        input_duration_seconds=3.0,
        input_audio_codec="aac",
    )
    codec, duration, packets = _audio_facts(out)
    assert codec == "mp3"
    assert duration == pytest.approx(3.0, abs=0.15)
    assert result.output_bytes == out.stat().st_size > 0
    assert result.output_duration_seconds == pytest.approx(3.0, abs=0.15)
    assert not result.stream_copied
    assert len({len(p) for p in packets}) > 2  # VBR: frame sizes vary


async def test_vp9_opus_mkv_becomes_mp3(
    media_dir: Path, tmp_path: Path, ffmpeg_config: FfmpegConfig
) -> None:
    out = tmp_path / "out.mp3"
    await convert(
        media_dir / "vp9_opus.mkv", out, options=ConversionOptions(), ffmpeg=ffmpeg_config
    )
    codec, duration, _ = _audio_facts(out)
    assert codec == "mp3"
    assert duration == pytest.approx(3.0, abs=0.15)


async def test_mp3_audio_is_stream_copied(
    media_dir: Path, tmp_path: Path, ffmpeg_config: FfmpegConfig
) -> None:
    source = media_dir / "mp3_audio.mp4"
    out = tmp_path / "out.mp3"
    result = await convert(
        source,
        out,
        options=ConversionOptions(),
        ffmpeg=ffmpeg_config,
        input_audio_codec="mp3",
    )
    codec, _, packets = _audio_facts(out)
    assert result.stream_copied
    assert codec == "mp3"
    assert packets == _input_packets(source)  # the very same MP3 frames


async def test_mp3_audio_with_a_bitrate_is_reencoded_as_cbr(
    media_dir: Path, tmp_path: Path, ffmpeg_config: FfmpegConfig
) -> None:
    source = media_dir / "mp3_audio.mp4"
    out = tmp_path / "out.mp3"
    result = await convert(
        source,
        out,
        options=ConversionOptions(bitrate="128k"),
        ffmpeg=ffmpeg_config,
        input_audio_codec="mp3",
    )
    codec, _, packets = _audio_facts(out)
    assert not result.stream_copied
    assert codec == "mp3"
    # CBR 128k at 44.1 kHz: every frame is 417 or 418 bytes (the padding byte).
    assert {len(p) for p in packets} <= {417, 418}


@pytest.mark.parametrize(
    ("fmt", "codec"),
    [("m4a", "aac"), ("opus", "opus"), ("ogg", "vorbis"), ("flac", "flac"), ("wav", "pcm_s16le")],
)
async def test_other_formats_have_the_right_codec(
    fmt: AudioFormat, codec: str, media_dir: Path, tmp_path: Path, ffmpeg_config: FfmpegConfig
) -> None:
    out = tmp_path / f"out.{fmt}"
    await convert(
        media_dir / "h264_aac.mp4",
        out,
        options=ConversionOptions(format=fmt),
        ffmpeg=ffmpeg_config,
    )
    actual, duration, _ = _audio_facts(out)
    assert actual == codec
    assert duration == pytest.approx(3.0, abs=0.15)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("silent.mp4", "the video has no audio track"),
        ("truncated.mp4", "the file is truncated or not a readable media file"),
        ("not_media", "the file is not a readable media file"),
    ],
)
async def test_bad_inputs_fail_permanently_with_a_clear_reason(
    name: str, reason: str, media_dir: Path, tmp_path: Path, ffmpeg_config: FfmpegConfig
) -> None:
    with pytest.raises(InputError) as caught:
        await convert(
            media_dir / name,
            tmp_path / "out.mp3",
            options=ConversionOptions(),
            ffmpeg=ffmpeg_config,
        )
    assert caught.value.permanent
    assert caught.value.reason == reason


async def test_progress_increases_and_ends_near_100(
    long_audio: Path, tmp_path: Path, ffmpeg_config: FfmpegConfig
) -> None:
    seen: list[float] = []

    async def on_progress(percent: float) -> None:
        seen.append(percent)

    await convert(
        long_audio,
        tmp_path / "out.mp3",
        options=ConversionOptions(),
        ffmpeg=ffmpeg_config,
        input_duration_seconds=LONG_SECONDS,
        on_progress=on_progress,
    )
    assert len(seen) >= 2
    assert seen == sorted(set(seen))
    assert seen[0] >= 0 and seen[-1] == pytest.approx(100, abs=1)


async def test_no_progress_without_a_known_duration(
    media_dir: Path, tmp_path: Path, ffmpeg_config: FfmpegConfig
) -> None:
    seen: list[float] = []

    async def on_progress(percent: float) -> None:
        seen.append(percent)

    result = await convert(
        media_dir / "h264_aac.mp4",
        tmp_path / "out.mp3",
        options=ConversionOptions(),
        ffmpeg=ffmpeg_config,
        on_progress=on_progress,
    )
    assert seen == []
    assert result.output_duration_seconds == pytest.approx(3.0, abs=0.15)


async def test_the_time_limit_kills_ffmpeg(
    long_audio: Path, tmp_path: Path, ffmpeg_config: FfmpegConfig
) -> None:
    with pytest.raises(ConversionTimeout):
        await convert(
            long_audio,
            tmp_path / "out.mp3",
            options=ConversionOptions(),
            ffmpeg=replace(ffmpeg_config, timeout_seconds=0.3),
        )
    assert stray_processes() == []
