"""The blob-store port: large files (uploaded videos, produced audio) written and read as streams.

Adapters: `folder` (a directory; the default) and, later, S3. Only adapters touch storage.
Writes are atomic: a blob is visible under its key only once completely written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


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


def open_blob_store(url: str) -> BlobStore:
    """Build the adapter chosen by `url`'s scheme."""
    if url.startswith("file://"):
        from earshot.common.blobs.folder import FolderBlobStore

        return FolderBlobStore(Path(url.removeprefix("file://")))
    scheme = url.split(":", 1)[0]
    raise BlobError(f"unsupported storage URL scheme {scheme!r} (supported: file:///PATH)")
