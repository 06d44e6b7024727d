"""Inspect an upload with PyAV before a job is queued: is it media, with audio we can read."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from earshot.common.problems import Problem

# Demuxers that "succeed" on files no user would call a video: text, raw bytes, still images.
_NOT_MEDIA_FORMATS = frozenset({"tty", "bin", "xbin", "idf", "adf", "lrc", "image2", "ass", "srt"})
# How much of a file the demuxer may read to identify streams (bounds probe time on odd inputs).
_PROBE_OPTIONS = {"probesize": str(32 << 20), "analyzeduration": str(30_000_000)}
# Packets read looking for the first decodable audio frame; past this the header is trusted
# (files that put all audio after the video must not be read end to end here).
_PACKETS_TO_TRY = 2000
_HEADER_BYTES = 192
_TS_PACKET_BYTES = 188


class NotMedia(Problem):
    """The upload is not audio or video at all."""

    status, title = 415, "Unsupported Media Type"


class UnusableMedia(Problem):
    """The upload is media, but there is nothing we can convert."""

    status, title = 422, "Unprocessable Content"


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """What the probe learnt about an input."""

    container: str | None = None
    duration_seconds: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None


async def probe_media(path: Path, *, timeout_seconds: float) -> MediaFacts:
    """Facts about the media file at `path`; raises `NotMedia` or `UnusableMedia`."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(_probe, path), timeout_seconds)
    except TimeoutError as exc:
        raise UnusableMedia("the file could not be read in time (corrupt or unsupported)") from exc


def _probe(path: Path) -> MediaFacts:
    try:
        container = av.open(str(path), options=_PROBE_OPTIONS)
    except (av.FFmpegError, ValueError, OSError) as exc:
        if _looks_like_media(path):
            raise UnusableMedia("the file is corrupt or truncated and cannot be read") from exc
        raise NotMedia("not a media file") from exc
    with container:
        return _facts(container)


def _facts(container: Any) -> MediaFacts:
    format_name = str(container.format.name)
    streams = list(container.streams)
    kinds = {stream.type for stream in streams}
    if (
        format_name in _NOT_MEDIA_FORMATS
        or format_name.endswith("_pipe")
        or not (kinds & {"audio", "video"})
    ):
        raise NotMedia("not a media file")
    audio = container.streams.audio
    video = container.streams.video
    if not audio:
        raise UnusableMedia("the video has no audio track")
    _require_readable_audio(container, audio[0])
    return MediaFacts(
        container=format_name[:64],
        duration_seconds=_duration_seconds(container, audio[0]),
        video_codec=_codec_name(video[0]) if video else None,
        audio_codec=_codec_name(audio[0]),
    )


def _require_readable_audio(container: Any, stream: Any) -> None:
    """Decode the first audio frame: a header that promises audio is not enough."""
    try:
        for count, packet in enumerate(container.demux()):
            if packet.stream is stream and packet.size and packet.decode():
                return
            if count >= _PACKETS_TO_TRY:
                return
    except (av.FFmpegError, ValueError) as exc:
        raise UnusableMedia("the audio track is corrupt and cannot be decoded") from exc
    raise UnusableMedia("the audio track is empty or cannot be decoded")


def _duration_seconds(container: Any, stream: Any) -> float | None:
    if container.duration:
        return round(float(container.duration) / av.time_base, 3)
    if stream.duration and stream.time_base:
        return round(float(stream.duration * stream.time_base), 3)
    return None


def _codec_name(stream: Any) -> str | None:
    codec = stream.codec_context.codec if stream.codec_context else None
    return str(codec.canonical_name)[:32] if codec is not None else None


def _looks_like_media(path: Path) -> bool:
    """Known container signatures: such a file that ffmpeg cannot open is corrupt, not foreign."""
    with path.open("rb") as handle:
        head = handle.read(_HEADER_BYTES)
    return (
        head[4:8] in {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"}
        or head.startswith((b"\x1a\x45\xdf\xa3", b"RIFF", b"OggS", b"FLV", b"ID3", b"fLaC"))
        or head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"0&\xb2u\x8e"))
        or (len(head) > _TS_PACKET_BYTES and head[0] == head[_TS_PACKET_BYTES] == 0x47)
    )
