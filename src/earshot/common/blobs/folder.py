"""The folder blob store: one file per key under a root directory.

Writes go to `root/.tmp/` (same filesystem) and are renamed into place on commit, so readers only
ever see whole blobs. File I/O runs in worker threads one chunk at a time, so memory stays flat
however large the blob.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from stat import S_ISREG
from typing import BinaryIO

from earshot.common.blobs import BlobError, BlobInfo, BlobNotFound

TMP_DIR = ".tmp"
_FILE_MODE = 0o644


def _fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(file: BinaryIO, path: str) -> None:
    """Close and remove a temporary file; synchronous so that it also runs during cancellation."""
    file.close()
    with suppress(FileNotFoundError):
        os.unlink(path)


class _FolderWriter:
    """Appends chunks to the temporary file of one open write."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._bytes_written = 0

    @property
    def bytes_written(self) -> int:
        """Bytes accepted so far."""
        return self._bytes_written

    async def write(self, chunk: bytes) -> None:
        """Append one chunk."""
        if chunk:
            await asyncio.to_thread(self._file.write, chunk)
            self._bytes_written += len(chunk)


class FolderBlobStore:
    """A `BlobStore` in a local (or mounted) directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    @asynccontextmanager
    async def open_write(self, key: str) -> AsyncIterator[_FolderWriter]:
        """Stream a blob in; it appears under `key` only on clean exit of the context."""
        target = self._path(key)
        file, tmp_path = await asyncio.to_thread(self._open_temp)
        try:
            yield _FolderWriter(file)
            await asyncio.to_thread(self._commit, file, tmp_path, target)
        except BaseException:
            _discard(file, tmp_path)
            raise

    async def put_file(self, key: str, path: Path) -> BlobInfo:
        """Copy a local file in under `key`, atomically."""
        target = self._path(key)

        def copy() -> None:
            file, tmp_path = self._open_temp()
            try:
                with path.open("rb") as source:
                    shutil.copyfileobj(source, file, 1 << 20)
                self._commit(file, tmp_path, target)
            except BaseException:
                _discard(file, tmp_path)
                raise

        await asyncio.to_thread(copy)
        return await self._stat_or_raise(key)

    async def read(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_bytes: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Bytes `start`..`end` inclusive (None: to the end); `BlobNotFound` on first iteration."""
        if start < 0 or (end is not None and end < start - 1) or chunk_bytes < 1:
            raise ValueError(f"bad range {start}-{end} or chunk size {chunk_bytes}")
        path = self._path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(key) from exc
        try:
            await asyncio.to_thread(file.seek, start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                size = chunk_bytes if remaining is None else min(chunk_bytes, remaining)
                chunk = await asyncio.to_thread(file.read, size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            file.close()

    async def stat(self, key: str) -> BlobInfo | None:
        """Size, a cheap etag (size and mtime, hex) and the modification time; None when absent."""
        st = await asyncio.to_thread(self._file_stat, self._path(key))
        if st is None:
            return None
        return BlobInfo(
            key=key,
            size_bytes=st.st_size,
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            modified_at=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
        )

    async def delete(self, key: str) -> None:
        """Remove a blob; absent is fine."""
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    @asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        """The blob's own file (read it, never change it)."""
        await self._stat_or_raise(key)
        yield self._path(key)

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key starting with `prefix`, sorted."""
        for key in await asyncio.to_thread(lambda: sorted(self._walk(prefix))):
            yield key

    async def check(self) -> None:
        """Raise `BlobError` unless the root and its temp folder are writable."""
        try:
            tmp_dir = await asyncio.to_thread(self._open_temp_dir)
            writable = await asyncio.to_thread(os.access, tmp_dir, os.W_OK)
        except OSError as exc:
            raise BlobError(f"blob folder {self.root} is not usable: {exc}") from exc
        if not writable:
            raise BlobError(f"blob folder {self.root} is not writable")

    async def close(self) -> None:
        """Nothing to release."""

    def _path(self, key: str) -> Path:
        """The file of `key`; `ValueError` for keys that could leave the root."""
        parts = key.split("/")
        if (
            not key
            or key.startswith("/")
            or "\\" in key
            or "\0" in key
            or parts[0] == TMP_DIR
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise ValueError(f"invalid blob key {key!r}")
        path = self.root.joinpath(*PurePosixPath(key).parts)
        # A symlink planted inside the root must not lead outside it either.
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"blob key {key!r} leaves the store")
        return path

    @staticmethod
    def _file_stat(path: Path) -> os.stat_result | None:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st if S_ISREG(st.st_mode) else None

    def _open_temp_dir(self) -> Path:
        tmp_dir = self.root / TMP_DIR
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return tmp_dir

    def _open_temp(self) -> tuple[BinaryIO, str]:
        fd, tmp_path = tempfile.mkstemp(dir=self._open_temp_dir(), prefix="blob-")
        os.fchmod(fd, _FILE_MODE)
        return os.fdopen(fd, "wb"), tmp_path

    @staticmethod
    def _commit(file: BinaryIO, tmp_path: str, target: Path) -> None:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)

    def _walk(self, prefix: str) -> Iterator[str]:
        # Only descend from the folder the prefix names, not the whole store.
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            relative = Path(dirpath).relative_to(self.root).as_posix()
            if relative == ".":
                dirnames[:] = [d for d in dirnames if d != TMP_DIR]
                relative = ""
            for name in filenames:
                key = f"{relative}/{name}" if relative else name
                if key.startswith(prefix):
                    yield key

    async def _stat_or_raise(self, key: str) -> BlobInfo:
        info = await self.stat(key)
        if info is None:
            raise BlobNotFound(key)
        return info
