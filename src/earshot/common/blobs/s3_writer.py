"""One streamed write to S3: a single `PutObject` when small, a multipart upload otherwise.

At most one part is buffered: each time the buffer reaches the part size it is uploaded as the next
part, so memory stays near the part size however large the blob. The object appears only when the
upload completes (S3 makes that atomic); `abort` removes every uploaded part.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

import structlog

from earshot.common.blobs import BlobError
from earshot.common.blobs.s3_errors import s3_errors
from earshot.common.blobs.s3_options import MAX_PARTS

_log = structlog.get_logger()


class S3Writer:
    """Buffers one part, uploads full parts as they fill, then completes or aborts."""

    def __init__(self, client: Any, *, bucket: str, object_key: str, part_size_bytes: int) -> None:
        self._client, self._bucket, self._object_key = client, bucket, object_key
        self._part_size = part_size_bytes
        self._buffer = bytearray()
        self._bytes_written = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    @property
    def bytes_written(self) -> int:
        """Bytes accepted so far."""
        return self._bytes_written

    async def write(self, chunk: bytes) -> None:
        """Append one chunk, uploading every part it completes."""
        if not chunk:
            return
        self._buffer += chunk
        self._bytes_written += len(chunk)
        while len(self._buffer) >= self._part_size:
            # One copy of the part: a slice of the bytearray would make a second one.
            with memoryview(self._buffer) as view:
                part = bytes(view[: self._part_size])
            del self._buffer[: self._part_size]
            await self._upload_part(part)

    async def commit(self) -> None:
        """Make the blob visible: `PutObject`, or the last part and `CompleteMultipartUpload`."""
        with s3_errors(bucket=self._bucket):
            if self._upload_id is None:
                await self._client.put_object(
                    Bucket=self._bucket, Key=self._object_key, Body=bytes(self._buffer)
                )
            else:
                if self._buffer:
                    await self._upload_part(bytes(self._buffer))
                await self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._object_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        self._buffer = bytearray()

    async def abort(self) -> None:
        """Drop the uploaded parts; a failure is logged, not raised (the original error matters)."""
        self._buffer = bytearray()
        if self._upload_id is None:
            return
        try:
            with s3_errors(bucket=self._bucket):
                await self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._object_key, UploadId=self._upload_id
                )
        except BlobError as exc:
            # The bucket's lifecycle rule (AbortIncompleteMultipartUpload) reclaims these parts.
            _log.warning(
                "blobs.s3_abort_failed",
                key=self._object_key,
                upload_id=self._upload_id,
                error=str(exc),
            )

    async def _upload_part(self, body: bytes) -> None:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise BlobError(
                f"blob larger than {MAX_PARTS} parts of {self._part_size} bytes: "
                "raise part_size_mb in the storage URL"
            )
        with s3_errors(bucket=self._bucket):
            if self._upload_id is None:
                await self._start_upload()
            uploaded = await self._client.upload_part(
                Bucket=self._bucket,
                Key=self._object_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        self._parts.append({"ETag": uploaded["ETag"], "PartNumber": number})

    async def _start_upload(self) -> None:
        """`CreateMultipartUpload`, seen through to its answer even when the caller is cancelled."""
        creating = asyncio.ensure_future(
            self._client.create_multipart_upload(Bucket=self._bucket, Key=self._object_key)
        )
        try:
            created = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The server may open the upload anyway; only its id lets `abort` remove it.
            with suppress(Exception):
                self._upload_id = str((await creating)["UploadId"])
            raise
        self._upload_id = str(created["UploadId"])
