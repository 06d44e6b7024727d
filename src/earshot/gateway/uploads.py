"""Streaming multipart uploads: the file part goes straight into the blob store, chunk by chunk.

`request.form()` and `UploadFile` spool whole files; here python-multipart's low-level parser turns
each received chunk into events, and the file bytes are written as they arrive, so memory stays
bounded by one chunk whatever the file size. The size limit is enforced while streaming.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from earshot.common.blobs import BlobStore, BlobWriter
from earshot.common.problems import Problem

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 1024
MAX_PARTS = 32
# Multipart framing around the file: boundaries, part headers and small fields.
BODY_OVERHEAD_BYTES = 64 * 1024
DEFAULT_FILENAME = "upload"


class UploadTooLarge(Problem):
    """The upload exceeds the configured size limit."""

    status, title = 413, "Content Too Large"


class MalformedUpload(Problem):
    """The body is not a well-formed multipart/form-data request."""

    status, title = 400, "Bad Request"


class NotMultipart(Problem):
    """The body is not multipart/form-data at all."""

    status, title = 415, "Unsupported Media Type"


@dataclass(slots=True)
class Upload:
    """What a multipart body held: the stored file (the first file part) and the text fields."""

    file_field: str | None = None
    filename: str = DEFAULT_FILENAME
    size_bytes: int = 0
    file_count: int = 0
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Part:
    name: str = ""
    filename: str | None = None
    kind: str = "field"  # "file" (stored), "skip" (an extra file), or "field"
    value: bytearray = field(default_factory=bytearray)


class _Events:
    """Parser callbacks: they only record events; the async side acts on them after each chunk."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""

    def callbacks(self) -> MultipartCallbacks:
        """The parser's callback table."""
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": lambda: self.items.append(("end", b"")),
            "on_end": lambda: self.items.append(("done", b"")),
        }

    def _on_part_begin(self) -> None:
        self._disposition = b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        self.items.append(("headers", self._disposition))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.items.append(("data", bytes(data[start:end])))


class _Receiver:
    """Acts on parser events: stores the first file part, drains extra files, keeps small fields."""

    def __init__(
        self, blobs: BlobStore, key: str, *, stack: AsyncExitStack, max_bytes: int, chunk_bytes: int
    ) -> None:
        self.upload = Upload()
        self.finished = False
        self.stored = False
        self._blobs = blobs
        self._key = key
        self._stack = stack
        self._max_bytes = max_bytes
        self._chunk_bytes = chunk_bytes
        self._part = _Part()
        self._parts = 0
        self._writer: BlobWriter | None = None
        self._buffer = bytearray()

    async def handle(self, kind: str, data: bytes) -> None:
        """Act on one parser event."""
        if kind == "headers":
            await self._begin_part(data)
        elif kind == "data":
            await self._part_data(data)
        elif kind == "end":
            await self._end_part()
        elif kind == "done":
            self.finished = True

    async def _begin_part(self, disposition: bytes) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise MalformedUpload(f"too many parts (at most {MAX_PARTS})")
        name, filename = _disposition(disposition)
        self._part = _Part(name=name, filename=filename)
        if filename is None:
            return
        self.upload.file_count += 1
        if self.upload.file_count > 1:
            self._part.kind = "skip"
            return
        self._part.kind = "file"
        self.upload.file_field = name
        self.upload.filename = filename
        self._writer = await self._stack.enter_async_context(self._blobs.open_write(self._key))

    async def _part_data(self, data: bytes) -> None:
        part = self._part
        if part.kind == "file":
            self.upload.size_bytes += len(data)
            if self.upload.size_bytes > self._max_bytes:
                raise UploadTooLarge(
                    f"the file is larger than the limit of {self._max_bytes} bytes"
                )
            self._buffer += data
            if len(self._buffer) >= self._chunk_bytes:
                await self._flush()
        elif part.kind == "field":
            part.value += data
            if len(part.value) > MAX_FIELD_BYTES:
                raise MalformedUpload(f"field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes")

    async def _end_part(self) -> None:
        part = self._part
        if part.kind == "file":
            await self._flush()
            self._writer = None
            await self._stack.aclose()  # commits the blob
            self.stored = True
        elif part.kind == "field":
            self.upload.fields[part.name] = part.value.decode("utf-8", errors="replace")
        self._part = _Part(kind="skip")

    async def _flush(self) -> None:
        if self._buffer and self._writer is not None:
            await self._writer.write(bytes(self._buffer))
            self._buffer.clear()


async def receive_upload(
    body: AsyncIterator[bytes],
    *,
    content_type: str,
    blobs: BlobStore,
    key: str,
    max_bytes: int,
    chunk_bytes: int,
) -> Upload:
    """Stream a multipart body; the first file part is stored under `key`.

    On any error nothing stays under `key`. On success the caller owns the blob (if a file came).
    """
    boundary = multipart_boundary(content_type)
    events = _Events()
    parser = MultipartParser(boundary, events.callbacks())
    max_body_bytes = max_bytes + BODY_OVERHEAD_BYTES
    received = 0
    receiver: _Receiver | None = None
    try:
        async with AsyncExitStack() as stack:
            receiver = _Receiver(
                blobs, key, stack=stack, max_bytes=max_bytes, chunk_bytes=chunk_bytes
            )
            async for chunk in body:
                received += len(chunk)
                if received > max_body_bytes:
                    raise UploadTooLarge(f"the body is larger than the limit of {max_bytes} bytes")
                _feed(parser, chunk)
                for kind, data in events.items:
                    await receiver.handle(kind, data)
                events.items.clear()
            if not receiver.finished:
                raise MalformedUpload("the multipart body ended early")
    except BaseException:
        if receiver is not None and receiver.stored:
            await blobs.delete(key)
        raise
    return receiver.upload


def multipart_boundary(content_type: str) -> bytes:
    """The boundary of a multipart/form-data content type; raises `NotMultipart`."""
    media_type, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise NotMultipart("the request body must be multipart/form-data")
    return boundary


def _feed(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except FormParserError as exc:
        raise MalformedUpload(f"malformed multipart body: {exc}") from exc


def _disposition(header: bytes) -> tuple[str, str | None]:
    """Field name and file name (None for a text field) of a part's Content-Disposition."""
    _, params = parse_options_header(header)
    name = params.get(b"name", b"").decode("utf-8", errors="replace")
    raw = params.get(b"filename")
    if raw is not None:
        return name, clean_filename(raw.decode("utf-8", errors="replace"))
    extended = re.search(rb"filename\*\s*=\s*([^;]+)", header)
    if extended is None:
        return name, None
    value = extended.group(1).strip().strip(b'"').decode("latin-1")
    _, _, encoded = value.partition("''")
    return name, clean_filename(unquote(encoded or value, encoding="utf-8", errors="replace"))


def clean_filename(name: str) -> str:
    """A file name safe to store and echo back: no path, no control characters, bounded length."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip().strip(".")
    return base[:255] or DEFAULT_FILENAME
