"""The S3 adapter without a server: its URL, its dispatch and the part-count limit of a write."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from earshot.common.blobs import BlobError, open_blob_store
from earshot.common.blobs.s3 import S3BlobStore
from earshot.common.blobs.s3_options import MAX_PARTS, MiB, S3Options
from earshot.common.blobs.s3_writer import S3Writer


def test_a_full_url_is_parsed() -> None:
    options = S3Options.from_url(
        "s3://earshot-media?endpoint_url=http://minio:9000/&region=eu-west-3&prefix=/prod/a/"
        "&part_size_mb=16&create_bucket=1&presign_endpoint_url=https://media.example.com"
    )

    assert options == S3Options(
        bucket="earshot-media",
        endpoint_url="http://minio:9000",
        region="eu-west-3",
        prefix="prod/a/",
        part_size_bytes=16 * MiB,
        create_bucket=True,
        addressing_style="path",
        presign_endpoint_url="https://media.example.com",
    )
    assert options.object_key("videos/v1") == "prod/a/videos/v1"


def test_a_bare_bucket_means_aws_defaults() -> None:
    options = S3Options.from_url("s3://earshot-media")

    assert (options.endpoint_url, options.region, options.prefix) == (None, None, "")
    assert (options.part_size_bytes, options.create_bucket) == (8 * MiB, False)
    assert options.addressing_style == "auto"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("s3://AB", "bucket name"),
        ("s3://key:secret@bucket", "AWS_ACCESS_KEY_ID"),
        ("s3://bucket/some/path", "prefix="),
        ("s3://bucket?endpoint=http://x", "unknown"),
        ("s3://bucket?region=a&region=b", "twice"),
        ("s3://bucket?part_size_mb=4", "between 5 and 5120"),
        ("s3://bucket?part_size_mb=big", "whole number"),
        ("s3://bucket?create_bucket=maybe", "1 or 0"),
        ("s3://bucket?endpoint_url=minio:9000", "http"),
        ("s3://bucket?addressing_style=dns", "path, virtual or auto"),
        ("s3://bucket?prefix=a/../b", "prefix"),
    ],
)
def test_a_bad_url_is_refused_with_a_reason(url: str, complaint: str) -> None:
    with pytest.raises(BlobError, match=complaint):
        S3Options.from_url(url)


async def test_open_blob_store_builds_the_s3_adapter(tmp_path: Path) -> None:
    store = open_blob_store(
        "s3://earshot-media?endpoint_url=http://127.0.0.1:9&region=eu-west-1", temp_dir=tmp_path
    )

    assert isinstance(store, S3BlobStore)
    assert (store.options.bucket, store.temp_dir) == ("earshot-media", tmp_path)
    await store.close()


class _PartCounter:
    """Stands in for the S3 client: accepts every part; opens uploads once `answer` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.creating, self.answer = asyncio.Event(), asyncio.Event()
        self.answer.set()

    async def create_multipart_upload(self, **_: Any) -> dict[str, str]:
        self.calls.append("create")
        self.creating.set()
        await self.answer.wait()
        return {"UploadId": "u1"}

    async def upload_part(self, **kwargs: Any) -> dict[str, str]:
        return {"ETag": f'"{kwargs["PartNumber"]}"'}

    async def abort_multipart_upload(self, **kwargs: Any) -> None:
        self.calls.append(f"abort {kwargs['UploadId']}")


async def test_a_write_beyond_the_part_limit_names_the_setting_to_raise() -> None:
    client = _PartCounter()
    writer = S3Writer(client, bucket="b", object_key="k", part_size_bytes=1)

    with pytest.raises(BlobError, match="part_size_mb"):
        await writer.write(b"x" * (MAX_PARTS + 1))
    await writer.abort()

    assert client.calls == ["create", "abort u1"]


async def test_a_write_cancelled_while_the_upload_opens_still_aborts_it() -> None:
    client = _PartCounter()
    client.answer.clear()
    writer = S3Writer(client, bucket="b", object_key="k", part_size_bytes=1)
    task = asyncio.create_task(writer.write(b"x"))
    await client.creating.wait()

    task.cancel()
    await asyncio.sleep(0)
    client.answer.set()  # the server opened the upload after all
    await asyncio.gather(task, return_exceptions=True)
    await writer.abort()

    assert task.cancelled()
    assert client.calls == ["create", "abort u1"]
