"""The S3 adapter against moto's S3 server: multipart, aborts, prefixes, failures, presigned URLs.

The port's contract itself runs in `tests/unit/common/test_blobs_contract.py` (the `s3` rig);
these are the guarantees only S3 has.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from earshot.common.blobs import BlobError, BlobNotFound
from earshot.common.blobs.s3 import S3BlobStore
from earshot.common.blobs.s3_options import MiB, S3Options
from tests.moto_server import TEST_REGION, MotoServer, TestBucket, use_test_credentials
from tests.net import free_port

pytestmark = pytest.mark.integration

PART = 5 * MiB
StoreFactory = Callable[..., S3BlobStore]


def pattern(size: int) -> bytes:
    """Bytes whose every offset is recognisable (a misplaced part cannot go unnoticed)."""
    return bytes(n * 7 % 251 for n in range(size))


async def put(store: S3BlobStore, key: str, data: bytes, *, chunk: int = MiB) -> None:
    async with store.open_write(key) as writer:
        for offset in range(0, len(data), chunk):
            await writer.write(data[offset : offset + chunk])


async def read_all(store: S3BlobStore, key: str, **kwargs: int) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, **kwargs)])


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def bucket(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestBucket]:
    use_test_credentials(monkeypatch)
    bucket = TestBucket(moto.endpoint_url)
    bucket.client.create_bucket(
        Bucket=bucket.name, CreateBucketConfiguration={"LocationConstraint": TEST_REGION}
    )
    yield bucket
    bucket.destroy()


@pytest.fixture
async def open_store(bucket: TestBucket, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores on the test bucket (5 MiB parts, copies under tmp_path) and closes them."""
    opened: list[S3BlobStore] = []

    def build(**params: str) -> S3BlobStore:
        options = S3Options.from_url(bucket.storage_url(**{"part_size_mb": "5", **params}))
        opened.append(S3BlobStore(options, temp_dir=tmp_path))
        return opened[-1]

    yield build
    for store in opened:
        await store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> S3BlobStore:
    return open_store()


async def test_a_write_larger_than_a_part_is_a_multipart_upload(
    store: S3BlobStore, bucket: TestBucket
) -> None:
    data = pattern(2 * PART + 123)

    async with store.open_write("videos/v1") as writer:
        for offset in range(0, len(data), MiB):
            await writer.write(data[offset : offset + MiB])
            if writer.bytes_written > PART:
                # Parts are on the server, yet nothing is visible under the key.
                assert len(bucket.unfinished_uploads()) == 1
                assert await store.stat("videos/v1") is None

    info = await store.stat("videos/v1")
    assert info is not None and info.etag.endswith("-3")
    assert info.size_bytes == len(data)
    assert await read_all(store, "videos/v1") == data
    assert bucket.unfinished_uploads() == []


async def test_a_small_write_is_one_put(store: S3BlobStore) -> None:
    await put(store, "audio/a", b"x" * 1000)

    info = await store.stat("audio/a")
    assert info is not None and "-" not in info.etag


async def test_an_error_after_some_parts_aborts_the_upload(
    store: S3BlobStore, bucket: TestBucket
) -> None:
    with pytest.raises(RuntimeError, match="client went away"):
        async with store.open_write("videos/v1") as writer:
            await writer.write(pattern(PART + 1))
            assert len(bucket.unfinished_uploads()) == 1
            raise RuntimeError("client went away")

    assert bucket.unfinished_uploads() == []
    assert await store.stat("videos/v1") is None


async def test_a_cancellation_after_some_parts_aborts_the_upload(
    store: S3BlobStore, bucket: TestBucket
) -> None:
    uploading = asyncio.Event()

    async def upload() -> None:
        async with store.open_write("videos/v1") as writer:
            await writer.write(pattern(PART + 1))
            uploading.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(upload())
    await uploading.wait()
    assert len(bucket.unfinished_uploads()) == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert task.cancelled()
    assert bucket.unfinished_uploads() == []
    assert await store.stat("videos/v1") is None


async def test_put_file_uploads_in_parts(store: S3BlobStore, tmp_path: Path) -> None:
    data = pattern(PART + 99)
    source = tmp_path / "out.mp3"
    source.write_bytes(data)

    info = await store.put_file("audio/j1", source)

    assert info.size_bytes == len(data) and info.etag.endswith("-2")
    assert await read_all(store, "audio/j1") == data


async def test_a_range_across_a_part_boundary(store: S3BlobStore) -> None:
    data = pattern(PART + 10)
    await put(store, "b", data)

    assert await read_all(store, "b", start=PART - 3, end=PART + 2) == data[PART - 3 : PART + 3]
    assert await read_all(store, "b", start=len(data) + 5) == b""
    chunks = [chunk async for chunk in store.read("b", start=PART, chunk_bytes=4)]
    assert [len(chunk) for chunk in chunks] == [4, 4, 2]


async def test_local_path_copies_are_removed(store: S3BlobStore, tmp_path: Path) -> None:
    await put(store, "audio/a", b"ID3 and more")

    async with store.local_path("audio/a") as path:
        assert path.parent == tmp_path and path.read_bytes() == b"ID3 and more"
    with pytest.raises(BlobNotFound):
        async with store.local_path("audio/none"):
            pass

    assert not path.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith("earshot-s3-")] == []


async def test_prefixes_keep_two_deployments_apart_in_one_bucket(
    open_store: StoreFactory, bucket: TestBucket
) -> None:
    one, two = open_store(prefix="one"), open_store(prefix="/two/")

    await put(one, "videos/x", b"one's")
    await put(two, "videos/x", b"two's")

    assert [key async for key in one.list_keys("videos/")] == ["videos/x"]
    assert await read_all(two, "videos/x") == b"two's"
    raw = bucket.client.list_objects_v2(Bucket=bucket.name)["Contents"]
    assert sorted(item["Key"] for item in raw) == ["one/videos/x", "two/videos/x"]


async def test_create_bucket_accepts_an_existing_bucket(open_store: StoreFactory) -> None:
    store = open_store(create_bucket="1")

    await store.check()
    await put(store, "k", b"v")


async def test_a_missing_bucket_is_named(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    use_test_credentials(monkeypatch)
    url = f"s3://earshot-nowhere?endpoint_url={moto.endpoint_url}&region={TEST_REGION}"
    store = S3BlobStore(S3Options.from_url(url))
    try:
        with pytest.raises(BlobError, match=r"earshot-nowhere.*does not exist"):
            await store.check()
        with pytest.raises(BlobError, match="does not exist"):
            await put(store, "k", b"v")
    finally:
        await store.close()


async def test_an_unreachable_endpoint_is_a_blob_error_not_a_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_test_credentials(monkeypatch)
    url = f"s3://earshot-test?endpoint_url=http://127.0.0.1:{free_port()}&region={TEST_REGION}"
    store = S3BlobStore(S3Options.from_url(url), max_attempts=2, connect_timeout_seconds=1)
    started = time.monotonic()
    try:
        with pytest.raises(BlobError, match="unreachable"):
            await store.check()
        with pytest.raises(BlobError) as stat_failure:
            await store.stat("k")
        with pytest.raises(BlobError):
            await read_all(store, "k")
        with pytest.raises(BlobError):
            await put(store, "k", b"v")
    finally:
        await store.close()

    assert not isinstance(stat_failure.value, BlobNotFound)
    assert time.monotonic() - started < 20


async def test_the_store_reconnects_after_a_server_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_test_credentials(monkeypatch)
    server = MotoServer()
    server.start()
    bucket = TestBucket(server.endpoint_url)
    store = S3BlobStore(S3Options.from_url(bucket.storage_url(create_bucket="1")), max_attempts=2)
    try:
        await put(store, "k", b"before")
        server.stop()
        with pytest.raises(BlobError, match="unreachable"):
            await store.stat("k")

        server.start()  # same port, empty memory
        with pytest.raises(BlobError, match="does not exist"):
            await store.check()
        bucket.client.create_bucket(
            Bucket=bucket.name, CreateBucketConfiguration={"LocationConstraint": TEST_REGION}
        )
        await put(store, "k", b"after")
        assert await read_all(store, "k") == b"after"
    finally:
        await store.close()
        bucket.destroy()
        server.stop()


async def test_a_presigned_url_serves_the_file_with_its_name_and_ranges(
    store: S3BlobStore,
) -> None:
    data = pattern(1000)
    await put(store, "audio/j1.mp3", data)
    disposition = "attachment; filename=\"_t_.mp3\"; filename*=UTF-8''%C3%89t%C3%A9.mp3"

    url = await store.presign_download(
        "audio/j1.mp3", content_disposition=disposition, media_type="audio/mpeg", expires_seconds=60
    )
    async with httpx.AsyncClient() as client:
        whole = await client.get(url)
        part = await client.get(url, headers={"Range": "bytes=100-199"})

    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    assert (whole.status_code, whole.content) == (200, data)
    assert whole.headers["content-disposition"] == disposition
    assert whole.headers["content-type"] == "audio/mpeg"
    assert (part.status_code, part.content) == (206, data[100:200])


async def test_presigned_urls_use_the_public_endpoint_when_given(open_store: StoreFactory) -> None:
    store = open_store(presign_endpoint_url="https://media.example.com")

    url = await store.presign_download(
        "audio/a.mp3", content_disposition="attachment", media_type="audio/mpeg", expires_seconds=60
    )

    assert url.startswith("https://media.example.com/")
