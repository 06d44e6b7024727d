"""Streaming a job's audio: one function for `/download` and `/api/v1/jobs/{id}/audio`.

Conditional and partial requests follow RFC 9110: `If-None-Match` → 304, a single `Range` → 206,
an unsatisfiable one → 416; several ranges are answered with the whole file (allowed, and simpler).
With `download_redirect` on and a store that presigns (S3), the answer is instead a 307 to the
store itself, whose URL carries the attachment name and media type; the store then serves the
bytes, ranges and conditional requests.
"""

from __future__ import annotations

import re
from email.utils import format_datetime
from pathlib import PurePath
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from earshot.common.blobs import BlobInfo, BlobStore, presign_download
from earshot.common.messages import AUDIO_MEDIA_TYPES
from earshot.common.problems import NotFound, Problem
from earshot.gateway.deps import get_gateway
from earshot.gateway.models import Job

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Problem):
    """The requested byte range lies outside the file."""

    status, title = 416, "Range Not Satisfiable"


def download_filename(job: Job) -> str:
    """The original file's name with the output format's extension."""
    stem = PurePath(job.original_filename).stem or "audio"
    return f"{stem}.{job.format}"


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and, for other names, RFC 5987 `filename*`."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    header = f'attachment; filename="{fallback}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


async def audio_response(
    request: Request, *, blobs: BlobStore, job: Job, chunk_bytes: int
) -> Response:
    """The job's output as a streamed response honouring `If-None-Match` and `Range`."""
    info = await blobs.stat(job.output_key)
    if info is None:
        raise NotFound("the audio file is missing")
    etag = f'"{info.etag}"'
    media_type = AUDIO_MEDIA_TYPES.get(job.format, "application/octet-stream")
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Last-Modified": format_datetime(info.modified_at, usegmt=True),
        "Cache-Control": "private, no-cache",
        "Content-Disposition": content_disposition(download_filename(job)),
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    redirect = await _redirect(request, blobs=blobs, job=job, media_type=media_type)
    if redirect is not None:
        return redirect
    span = _requested_span(request, info=info, etag=etag)
    status = 200
    start, end = 0, info.size_bytes - 1
    if span is not None:
        start, end = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size_bytes}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    return StreamingResponse(
        blobs.read(job.output_key, start=start, end=end, chunk_bytes=chunk_bytes),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )


async def _redirect(
    request: Request, *, blobs: BlobStore, job: Job, media_type: str
) -> RedirectResponse | None:
    """A 307 to a presigned URL of the store, when enabled and the store can give one."""
    settings = get_gateway(request).settings
    if not settings.download_redirect:
        return None
    url = await presign_download(
        blobs,
        job.output_key,
        content_disposition=content_disposition(download_filename(job)),
        media_type=media_type,
        expires_seconds=settings.download_redirect_seconds,
    )
    if url is None:
        return None
    # The URL is a short-lived credential: no cache may keep it.
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "private, no-store"})


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def _requested_span(request: Request, *, info: BlobInfo, etag: str) -> tuple[int, int] | None:
    header = request.headers.get("range")
    if header is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        return None  # the client's copy is stale: it gets the whole new file
    return parse_range(header, size=info.size_bytes)


def parse_range(header: str, *, size: int) -> tuple[int, int] | None:
    """The inclusive span of one `bytes=` range; None to ignore it; raises when unsatisfiable."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"the file has {size} bytes", headers={"Content-Range": f"bytes */{size}"}
    )
