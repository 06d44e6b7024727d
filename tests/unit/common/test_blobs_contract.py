"""The blob port's contract, written once and run against every adapter (folder, later S3)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from earshot.common.blobs import BlobError, BlobNotFound, BlobStore, open_blob_store
from earshot.common.blobs.folder import FolderBlobStore
from tests.unit.common.conftest import BlobRig

MiB = 1 << 20
ESCAPING_KEYS = ["../outside", "a/../../outside", "/etc/passwd", "", "a//b", "a/./b", "a\\..\\b"]


async def put(store: BlobStore, key: str, *chunks: bytes) -> None:
    async with store.open_write(key) as writer:
        for chunk in chunks:
            await writer.write(chunk)


async def read_all(store: BlobStore, key: str, **kwargs: int) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, **kwargs)])


def test_open_blob_store_refuses_unknown_schemes() -> None:
    with pytest.raises(BlobError, match="gs"):
        open_blob_store("gs://bucket")


async def test_stream_write_then_read(blob_rig: BlobRig) -> None:
    store = blob_rig.store
    await store.check()

    async with store.open_write("videos/v1") as writer:
        await writer.write(b"hello ")
        await writer.write(b"")
        await writer.write(b"world")
        assert writer.bytes_written == 11

    assert await read_all(store, "videos/v1") == b"hello world"
    info = await store.stat("videos/v1")
    assert info is not None and (info.key, info.size_bytes) == ("videos/v1", 11)


async def test_read_ranges_are_inclusive_and_chunked(blob_rig: BlobRig) -> None:
    store = blob_rig.store
    await put(store, "b", bytes(range(100)))

    assert await read_all(store, "b", start=10, end=19) == bytes(range(10, 20))
    assert await read_all(store, "b", start=95) == bytes(range(95, 100))
    assert await read_all(store, "b", start=98, end=500) == bytes([98, 99])
    assert await read_all(store, "b", start=0, end=0) == b"\x00"
    chunks = [chunk async for chunk in store.read("b", chunk_bytes=30)]
    assert [len(chunk) for chunk in chunks] == [30, 30, 30, 10]


async def test_an_empty_blob_is_a_blob(blob_rig: BlobRig) -> None:
    await put(blob_rig.store, "empty")

    assert await read_all(blob_rig.store, "empty") == b""
    info = await blob_rig.store.stat("empty")
    assert info is not None and info.size_bytes == 0


async def test_a_missing_blob_is_reported(blob_rig: BlobRig) -> None:
    store = blob_rig.store

    assert await store.stat("videos/none") is None
    with pytest.raises(BlobNotFound):
        await read_all(store, "videos/none")
    with pytest.raises(BlobNotFound):
        async with store.local_path("videos/none"):
            pass


async def test_an_error_mid_write_leaves_no_blob_and_no_temp_file(blob_rig: BlobRig) -> None:
    store = blob_rig.store

    with pytest.raises(RuntimeError, match="client went away"):
        async with store.open_write("videos/v1") as writer:
            await writer.write(b"partial")
            raise RuntimeError("client went away")

    assert await store.stat("videos/v1") is None
    assert blob_rig.temp_files() == []


async def test_a_cancelled_write_leaves_no_blob_and_no_temp_file(blob_rig: BlobRig) -> None:
    store = blob_rig.store
    started = asyncio.Event()

    async def upload() -> None:
        async with store.open_write("videos/v1") as writer:
            await writer.write(b"partial")
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(upload())
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert task.cancelled()
    assert await store.stat("videos/v1") is None
    assert blob_rig.temp_files() == []


async def test_readers_see_the_old_blob_until_a_rewrite_commits(blob_rig: BlobRig) -> None:
    store = blob_rig.store
    await put(store, "k", b"old")

    async with store.open_write("k") as writer:
        await writer.write(b"new, longer")
        assert await read_all(store, "k") == b"old"
        assert [key async for key in store.list_keys()] == ["k"]

    assert await read_all(store, "k") == b"new, longer"


@pytest.mark.parametrize("key", ESCAPING_KEYS)
async def test_keys_that_escape_the_store_are_refused(blob_rig: BlobRig, key: str) -> None:
    store = blob_rig.store

    with pytest.raises(ValueError):
        async with store.open_write(key):
            pass
    with pytest.raises(ValueError):
        await store.stat(key)
    with pytest.raises(ValueError):
        await store.delete(key)
    with pytest.raises(ValueError):
        await read_all(store, key)


async def test_stat_gives_size_a_changing_etag_and_utc_time(blob_rig: BlobRig) -> None:
    store = blob_rig.store
    await put(store, "k", b"one")
    first = await store.stat("k")
    assert first == await store.stat("k")

    await put(store, "k", b"three")
    second = await store.stat("k")

    assert first is not None and second is not None
    assert (first.size_bytes, second.size_bytes) == (3, 5)
    assert first.etag != second.etag
    assert second.modified_at.tzinfo is not None
    assert abs(datetime.now(tz=UTC) - second.modified_at) < timedelta(minutes=1)


async def test_delete_is_idempotent(blob_rig: BlobRig) -> None:
    store = blob_rig.store
    await put(store, "k", b"x")

    await store.delete("k")
    await store.delete("k")

    assert await store.stat("k") is None


async def test_list_keys_by_prefix(blob_rig: BlobRig) -> None:
    store = blob_rig.store
    for key in ["videos/b", "videos/a", "audio/a", "videosx", "videos/deep/c"]:
        await put(store, key, b"x")

    async def keys(prefix: str = "") -> list[str]:
        return sorted([key async for key in store.list_keys(prefix)])

    assert await keys("videos/") == ["videos/a", "videos/b", "videos/deep/c"]
    assert await keys("vid") == ["videos/a", "videos/b", "videos/deep/c", "videosx"]
    assert await keys("videos/d") == ["videos/deep/c"]
    assert await keys("nothing/") == []
    assert len(await keys()) == 5


async def test_local_path_holds_the_bytes(blob_rig: BlobRig) -> None:
    store = blob_rig.store
    await put(store, "audio/a.mp3", b"ID3 and more")

    async with store.local_path("audio/a.mp3") as path:
        assert path.read_bytes() == b"ID3 and more"


async def test_put_file_stores_a_copy(blob_rig: BlobRig, tmp_path: Path) -> None:
    store = blob_rig.store
    source = tmp_path / "out.mp3"
    source.write_bytes(b"audio" * 1000)

    info = await store.put_file("audio/j1", source)
    source.write_bytes(b"changed later")

    assert (info.key, info.size_bytes) == ("audio/j1", 5000)
    assert await read_all(store, "audio/j1") == b"audio" * 1000
    assert blob_rig.temp_files() == []


async def test_a_large_write_streams_without_growing_memory(blob_rig: BlobRig) -> None:
    store = blob_rig.store
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    total = 200

    async with store.open_write("videos/big") as writer:
        for n in range(total):
            # A fresh object per chunk: an adapter that kept chunks would grow by the full size.
            await writer.write(bytes([n % 251]) * MiB)
            peak = max(peak, process.memory_info().rss)
    read = 0
    async for chunk in store.read("videos/big", start=MiB * 199):
        assert chunk == bytes([199 % 251]) * len(chunk)
        read += len(chunk)
    async for chunk in store.read("videos/big"):
        read += len(chunk)
        peak = max(peak, process.memory_info().rss)

    assert read == 201 * MiB
    info = await store.stat("videos/big")
    assert info is not None and info.size_bytes == total * MiB
    assert peak - baseline < 64 * MiB


# Adapter-specific: the folder store's own guarantees.


async def test_folder_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    store = FolderBlobStore(tmp_path / "root")
    await store.check()
    os.symlink(outside, tmp_path / "root" / "link")

    with pytest.raises(ValueError):
        await store.stat("link/secret")


async def test_folder_hides_its_temp_folder(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path / "root")

    async with store.open_write("k") as writer:
        await writer.write(b"x")
        assert [key async for key in store.list_keys()] == []
        with pytest.raises(ValueError):
            await store.stat(".tmp/anything")


async def test_folder_check_fails_when_the_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "root").write_bytes(b"not a folder")

    with pytest.raises(BlobError):
        await FolderBlobStore(tmp_path / "root").check()
