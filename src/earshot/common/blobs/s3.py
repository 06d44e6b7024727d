"""The S3 blob store: one object per key in a bucket of AWS S3, MinIO or any S3-compatible store.

URL: `s3://BUCKET?endpoint_url=URL&region=REGION`, and optionally
- `prefix=PATH` — every key is stored under `PATH/` (several deployments can share one bucket);
- `part_size_mb=8` — multipart part size (5 to 5120); one write buffers at most one part;
- `create_bucket=1` — create the bucket when missing (development and tests only: in production
  the bucket, its access policy and its lifecycle rules are provisioned beforehand);
- `addressing_style=path|virtual|auto` — `path` by default when `endpoint_url` is set, else `auto`;
- `presign_endpoint_url=URL` — the endpoint as clients see it, for presigned download URLs, when
  it differs from the one earshot reaches (MinIO behind an ingress).
Credentials come from boto's usual chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and
`AWS_SESSION_TOKEN`), `AWS_PROFILE`, or an instance/pod role; never from the URL.
Writes are multipart uploads that are aborted on error or cancellation. Parts of an upload whose
process died (SIGKILL) stay invisible but billed: give the bucket a lifecycle rule
`AbortIncompleteMultipartUpload` (a day is plenty).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager, suppress
from datetime import UTC
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from earshot.common.blobs import BlobError, BlobInfo, BlobNotFound, check_key
from earshot.common.blobs.s3_clients import S3Clients
from earshot.common.blobs.s3_errors import error_code, s3_errors
from earshot.common.blobs.s3_options import S3Options
from earshot.common.blobs.s3_writer import S3Writer

_MAX_KEY_BYTES = 1024
_COPY_CHUNK_BYTES = 1 << 20


class S3BlobStore:
    """A `BlobStore` in an S3 bucket, with presigned download URLs."""

    def __init__(
        self,
        options: S3Options,
        *,
        temp_dir: Path | None = None,
        max_attempts: int = 5,
        connect_timeout_seconds: float = 5.0,
        read_timeout_seconds: float = 60.0,
        max_pool_connections: int = 32,
    ) -> None:
        self.options = options
        self.temp_dir = temp_dir
        self._clients = S3Clients(
            options,
            max_attempts=max_attempts,
            connect_timeout_seconds=connect_timeout_seconds,
            read_timeout_seconds=read_timeout_seconds,
            max_pool_connections=max_pool_connections,
        )

    @classmethod
    def from_url(cls, url: str, *, temp_dir: Path | None = None) -> S3BlobStore:
        """The store an `s3://` URL describes (see the module docstring)."""
        return cls(S3Options.from_url(url), temp_dir=temp_dir)

    @asynccontextmanager
    async def open_write(self, key: str) -> AsyncIterator[S3Writer]:
        """Stream a blob in; it appears under `key` only on clean exit of the context."""
        object_key = self._object_key(key)
        writer = S3Writer(
            await self._clients.get(),
            bucket=self.options.bucket,
            object_key=object_key,
            part_size_bytes=self.options.part_size_bytes,
        )
        try:
            yield writer
            await writer.commit()
        except BaseException:
            await writer.abort()
            raise

    async def put_file(self, key: str, path: Path) -> BlobInfo:
        """Upload a local file part by part under `key`."""
        async with self.open_write(key) as writer:
            source = await asyncio.to_thread(path.open, "rb")
            try:
                while chunk := await asyncio.to_thread(source.read, self.options.part_size_bytes):
                    await writer.write(chunk)
            finally:
                source.close()
        info = await self.stat(key)
        if info is None:
            raise BlobError(f"{key} vanished right after upload")
        return info

    async def read(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_bytes: int = 1 << 20
    ) -> AsyncGenerator[bytes, None]:
        """Bytes `start`..`end` inclusive (None: to the end), fetched with one ranged GET."""
        if start < 0 or (end is not None and end < start - 1) or chunk_bytes < 1:
            raise ValueError(f"bad range {start}-{end} or chunk size {chunk_bytes}")
        object_key = self._object_key(key)
        if end is not None and end < start:
            if await self.stat(key) is None:
                raise BlobNotFound(key)
            return
        body = await self._get_body(key, object_key, start=start, end=end)
        if body is None:
            return
        try:
            while True:
                with s3_errors(bucket=self.options.bucket, key=key):
                    chunk = await _read_up_to(body, chunk_bytes)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def stat(self, key: str) -> BlobInfo | None:
        """Size, ETag and modification time from `HeadObject`; None when absent."""
        object_key = self._object_key(key)
        client = await self._clients.get()
        try:
            with s3_errors(bucket=self.options.bucket, key=key):
                head = await client.head_object(Bucket=self.options.bucket, Key=object_key)
        except BlobNotFound:
            return None
        return BlobInfo(
            key=key,
            size_bytes=int(head["ContentLength"]),
            etag=str(head["ETag"]).strip('"'),
            modified_at=head["LastModified"].astimezone(UTC),
        )

    async def delete(self, key: str) -> None:
        """Remove a blob; absent is fine (S3 deletes are idempotent)."""
        object_key = self._object_key(key)
        client = await self._clients.get()
        with s3_errors(bucket=self.options.bucket):
            await client.delete_object(Bucket=self.options.bucket, Key=object_key)

    @asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        """A temporary copy of the blob (ffmpeg needs a real file), removed on exit."""
        self._object_key(key)
        fd, name = tempfile.mkstemp(prefix="earshot-s3-", dir=self.temp_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as file:
                async with aclosing(self.read(key, chunk_bytes=_COPY_CHUNK_BYTES)) as chunks:
                    async for chunk in chunks:
                        await asyncio.to_thread(file.write, chunk)
            yield path
        finally:
            _remove(name)

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key starting with `prefix`, page by page (S3 lists them sorted)."""
        client = await self._clients.get()
        strip = len(self.options.prefix)
        pages = aiter(
            client.get_paginator("list_objects_v2").paginate(
                Bucket=self.options.bucket, Prefix=self.options.object_key(prefix)
            )
        )
        while True:
            with s3_errors(bucket=self.options.bucket):
                page = await anext(pages, None)
            if page is None:
                return
            for item in page.get("Contents", ()):
                yield str(item["Key"])[strip:]

    async def check(self) -> None:
        """Raise `BlobError` unless the bucket exists and the credentials may use it."""
        client = await self._clients.get()
        with s3_errors(bucket=self.options.bucket):
            try:
                await client.head_bucket(Bucket=self.options.bucket)
            except ClientError as exc:
                if error_code(exc) in ("404", "NotFound"):
                    raise BlobError(f"S3 bucket {self.options.bucket!r} does not exist") from exc
                raise

    async def presign_download(
        self, key: str, *, content_disposition: str, media_type: str, expires_seconds: int
    ) -> str:
        """A presigned GET of the blob answering with these `Content-Disposition`/`Content-Type`."""
        object_key = self._object_key(key)
        client = await self._clients.get(self.options.presign_endpoint_url)
        with s3_errors(bucket=self.options.bucket, key=key):
            url = await client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.options.bucket,
                    "Key": object_key,
                    "ResponseContentDisposition": content_disposition,
                    "ResponseContentType": media_type,
                },
                ExpiresIn=expires_seconds,
            )
        return str(url)

    async def close(self) -> None:
        """Close the S3 clients (their HTTP connection pools)."""
        await self._clients.close()

    def _object_key(self, key: str) -> str:
        object_key = self.options.object_key(check_key(key))
        if len(object_key.encode()) > _MAX_KEY_BYTES:
            raise ValueError(f"blob key {key!r} is longer than S3 allows")
        return object_key

    async def _get_body(
        self, key: str, object_key: str, *, start: int, end: int | None
    ) -> Any | None:
        """The streaming body of a ranged GET; None when `start` lies past the end."""
        ranged = {} if start == 0 and end is None else {"Range": f"bytes={start}-{_str(end)}"}
        client = await self._clients.get()
        with s3_errors(bucket=self.options.bucket, key=key):
            try:
                response = await client.get_object(
                    Bucket=self.options.bucket, Key=object_key, **ranged
                )
            except ClientError as exc:
                if error_code(exc) == "InvalidRange":
                    return None
                raise
        return response["Body"]


def _remove(name: str) -> None:
    """Delete a temporary copy; synchronous so that it also runs during cancellation."""
    with suppress(FileNotFoundError):
        os.unlink(name)


def _str(value: int | None) -> str:
    return "" if value is None else str(value)


async def _read_up_to(body: Any, size: int) -> bytes:
    """Exactly `size` bytes from a streaming body, fewer only at its end."""
    chunk = await body.read(size)
    if len(chunk) == size or not chunk:
        return bytes(chunk)
    pieces, got = [chunk], len(chunk)
    while got < size:
        more = await body.read(size - got)
        if not more:
            break
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)
