"""Upload path: streamed to the blob store, size-limited, probed; rejected uploads leave no file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.messages import JOBS_QUEUE
from earshot.common.problems import PROBLEM_MEDIA_TYPE
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.gateway.settings import GatewaySettings
from earshot.gateway.uploads import (
    MalformedUpload,
    UploadTooLarge,
    clean_filename,
    receive_upload,
)
from tests.unit.gateway.helpers import TokenMaker, blob_keys, drain, file_part, multipart

MIB = 1024 * 1024


async def post_file(
    client: httpx.AsyncClient, tokens: TokenMaker, path: Path, *, route: str = "/api/v1/jobs"
) -> httpx.Response:
    body, content_type = multipart(file_part(path))
    return await client.post(
        route, content=body, headers={**tokens.headers(), "Content-Type": content_type}
    )


@pytest.mark.parametrize(
    ("fixture", "status", "detail"),
    [
        ("text_file", 415, "not a media file"),
        ("silent_mp4", 422, "the video has no audio track"),
        ("truncated_mp4", 422, "the file is corrupt or truncated and cannot be read"),
    ],
)
@pytest.mark.parametrize("route", ["/upload", "/api/v1/jobs"])
async def test_bad_media_is_refused_and_leaves_no_file(
    request: pytest.FixtureRequest,
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    blobs: FolderBlobStore,
    embedded_queue: EmbeddedQueue,
    fixture: str,
    status: int,
    detail: str,
    route: str,
) -> None:
    response = await post_file(client, tokens, request.getfixturevalue(fixture), route=route)

    assert response.status_code == status
    if route == "/upload":
        assert response.text == detail
    else:
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert response.json()["detail"] == detail
    assert await blob_keys(blobs) == []
    assert await drain(embedded_queue, JOBS_QUEUE) == []


async def test_vp9_opus_mkv_is_accepted(
    client: httpx.AsyncClient, tokens: TokenMaker, vp9_mkv: Path
) -> None:
    response = await post_file(client, tokens, vp9_mkv)

    assert response.status_code == 202
    facts = response.json()["input"]
    assert (facts["video_codec"], facts["audio_codec"]) == ("vp9", "opus")
    assert facts["container"].startswith("matroska")


async def _chunks(total: int, chunk: int = MIB) -> AsyncIterator[bytes]:
    block = b"\0" * chunk
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


async def _streamed_multipart(size: int) -> AsyncIterator[bytes]:
    yield (b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n')
    async for piece in _chunks(size):
        yield piece
    yield b"\r\n--bnd--\r\n"


async def test_upload_over_the_limit_is_413_while_streaming_and_leaves_no_file(
    client: httpx.AsyncClient, tokens: TokenMaker, blobs: FolderBlobStore, settings: GatewaySettings
) -> None:
    too_big = settings.max_upload_bytes + MIB
    headers = {**tokens.headers(), "Content-Type": "multipart/form-data; boundary=bnd"}

    response = await client.post("/upload", content=_streamed_multipart(too_big), headers=headers)

    assert response.status_code == 413
    assert await blob_keys(blobs) == []
    assert [p for p in blobs.root.rglob("*") if p.is_file()] == []


async def test_declared_length_over_the_limit_is_refused_before_reading(
    client: httpx.AsyncClient, tokens: TokenMaker, settings: GatewaySettings
) -> None:
    headers = {
        **tokens.headers(),
        "Content-Type": "multipart/form-data; boundary=bnd",
        "Content-Length": str(settings.max_upload_bytes * 2),
    }

    response = await client.post("/api/v1/jobs", content=b"", headers=headers)

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


async def test_a_large_upload_streams_with_bounded_memory(blobs: FolderBlobStore) -> None:
    size = 300 * MIB
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    try:
        upload = await receive_upload(
            _streamed_multipart(size),
            content_type="multipart/form-data; boundary=bnd",
            blobs=blobs,
            key="videos/big",
            max_bytes=size,
            chunk_bytes=MIB,
        )
    finally:
        done.set()
        await sampler

    info = await blobs.stat("videos/big")
    assert info is not None and info.size_bytes == size == upload.size_bytes
    assert upload.filename == "big.mp4"
    assert peak - baseline < 40 * MIB


async def test_fields_and_one_file_are_collected(blobs: FolderBlobStore) -> None:
    body, content_type = multipart(
        ("format", None, b"opus"), ("file", "a.mkv", b"data"), ("quality", None, b"3")
    )

    upload = await receive_upload(
        _once(body),
        content_type=content_type,
        blobs=blobs,
        key="videos/x",
        max_bytes=100,
        chunk_bytes=4096,
    )

    assert upload.fields == {"format": "opus", "quality": "3"}
    assert (upload.file_field, upload.filename, upload.size_bytes) == ("file", "a.mkv", 4)


async def test_a_truncated_body_is_malformed_and_leaves_no_file(blobs: FolderBlobStore) -> None:
    body, content_type = multipart(("file", "a.mkv", b"data" * 100))

    with pytest.raises(MalformedUpload):
        await receive_upload(
            _once(body[:-20]),
            content_type=content_type,
            blobs=blobs,
            key="videos/x",
            max_bytes=10_000,
            chunk_bytes=4096,
        )
    assert await blob_keys(blobs) == []


async def test_a_too_large_file_after_commit_leaves_no_file(blobs: FolderBlobStore) -> None:
    body, content_type = multipart(("file", "a.mkv", b"x" * 10), ("other", "b.mkv", b"y" * 10))

    upload = await receive_upload(
        _once(body),
        content_type=content_type,
        blobs=blobs,
        key="videos/x",
        max_bytes=10,
        chunk_bytes=4096,
    )
    assert upload.file_count == 2

    with pytest.raises(UploadTooLarge):
        await receive_upload(
            _once(body),
            content_type=content_type,
            blobs=blobs,
            key="videos/y",
            max_bytes=5,
            chunk_bytes=4096,
        )
    assert await blob_keys(blobs, "videos/y") == []


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("C:\\Users\\me\\clip.mp4", "clip.mp4"),
        ("../../etc/passwd", "passwd"),
        ("été\x00.mkv", "été.mkv"),
        ("", "upload"),
        ("..", "upload"),
    ],
)
def test_file_names_are_cleaned(raw: str, clean: str) -> None:
    assert clean_filename(raw) == clean


async def _once(body: bytes) -> AsyncIterator[bytes]:
    # Odd-sized pieces: part boundaries must survive being split across chunks.
    for start in range(0, len(body), 7):
        yield body[start : start + 7]
