"""The blob-store port: large files (uploaded videos, produced audio) written and read as streams.

Adapters: `folder` (a directory; the default, `file:///PATH`) and `s3`
(`s3://BUCKET?endpoint_url=URL&region=REGION`, see `earshot.common.blobs.s3`). Only adapters touch
storage. Writes are atomic: a blob is visible under its key only once completely written. A store
may also hand out short-lived download URLs (`presign_download`), so that clients fetch large files
from the store itself instead of through the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable


class BlobError(Exception):
    """The store is unreachable or failed."""


class BlobNotFound(BlobError):
    """No blob under that key."""


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a store knows of a blob."""

    key: str
    size_bytes: int
    etag: str
    modified_at: datetime


class BlobWriter(Protocol):
    """An open write: chunks in order, then commit (or abort on error)."""

    async def write(self, chunk: bytes) -> None: ...

    @property
    def bytes_written(self) -> int: ...


class BlobStore(Protocol):
    """Streaming storage of opaque files by key (keys look like `videos/<id>`)."""

    def open_write(self, key: str) -> AbstractAsyncContextManager[BlobWriter]:
        """Write a blob; committed on clean exit of the context, discarded on exception."""
        ...

    async def put_file(self, key: str, path: Path) -> BlobInfo:
        """Store a local file under `key` (atomically)."""
        ...

    def read(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_bytes: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Bytes `start`..`end` (inclusive; None = to the end). Raises `BlobNotFound`."""
        ...

    async def stat(self, key: str) -> BlobInfo | None:
        """Facts about a blob, None when absent."""
        ...

    async def delete(self, key: str) -> None:
        """Remove a blob; absent is fine (idempotent)."""
        ...

    def local_path(self, key: str) -> AbstractAsyncContextManager[Path]:
        """A readable local file with the blob's bytes (the file itself, or a temporary copy)."""
        ...

    def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key starting with `prefix`."""
        ...

    async def check(self) -> None:
        """Raise `BlobError` when the store is not usable (readiness)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class PresigningBlobStore(Protocol):
    """The optional capability of stores that clients can download from directly."""

    async def presign_download(
        self, key: str, *, content_disposition: str, media_type: str, expires_seconds: int
    ) -> str:
        """A URL that GETs the blob (Range works) with these response headers until it expires."""
        ...


async def presign_download(
    store: BlobStore, key: str, *, content_disposition: str, media_type: str, expires_seconds: int
) -> str | None:
    """A direct download URL for `key`, or None when the store cannot give one (the folder)."""
    if not isinstance(store, PresigningBlobStore):
        return None
    return await store.presign_download(
        key,
        content_disposition=content_disposition,
        media_type=media_type,
        expires_seconds=expires_seconds,
    )


def check_key(key: str) -> str:
    """`key` if it is a relative slash-separated path every adapter can store, else `ValueError`."""
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\0" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def open_blob_store(url: str, *, temp_dir: Path | None = None) -> BlobStore:
    """Build the adapter chosen by `url`'s scheme; `temp_dir` holds remote stores' local copies."""
    if url.startswith("file://"):
        from earshot.common.blobs.folder import FolderBlobStore

        return FolderBlobStore(Path(url.removeprefix("file://")))
    if url.startswith("s3://"):
        from earshot.common.blobs.s3 import S3BlobStore

        return S3BlobStore.from_url(url, temp_dir=temp_dir)
    scheme = url.split(":", 1)[0]
    raise BlobError(
        f"unsupported storage URL scheme {scheme!r} "
        "(supported: file:///PATH, s3://BUCKET?endpoint_url=URL&region=REGION)"
    )
