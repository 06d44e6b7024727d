"""From an upload to a durable job: stream, check, probe, then commit the job with its message.

Shared by the course's `/upload` and `POST /api/v1/jobs`. Any rejection, or a failure before the
commit, deletes the stored input: rejected uploads leave no file behind. Success is reported only
after the job and its `JobSubmitted` are committed together.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from uuid import uuid4

import structlog
from fastapi import Request

from earshot.common.messages import ConversionOptions
from earshot.common.problems import Problem
from earshot.gateway.deps import Gateway
from earshot.gateway.jobs import Owner, create_job, new_job
from earshot.gateway.models import QUEUED, Job, OutboxMessage
from earshot.gateway.probe import probe_media
from earshot.gateway.uploads import BODY_OVERHEAD_BYTES, Upload, UploadTooLarge, receive_upload

_log = structlog.get_logger()
OptionsParser = Callable[[dict[str, str]], ConversionOptions]


class WrongFileCount(Problem):
    """The body did not hold exactly one file part (where one was expected)."""

    status, title = 400, "Bad Request"


def new_fid() -> str:
    """A random, unguessable download id shaped like the course's (24 hex digits)."""
    return secrets.token_hex(12)


def reject_oversized(request: Request, *, max_bytes: int) -> None:
    """Refuse at once a body whose declared length is over the limit (before reading it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + BODY_OVERHEAD_BYTES:
        raise UploadTooLarge(f"the file is larger than the limit of {max_bytes} bytes")


async def submit_upload(
    gateway: Gateway,
    request: Request,
    *,
    owner: Owner,
    file_field: str | None,
    parse_options: OptionsParser,
) -> Job:
    """Store the request's one file, probe it and commit a queued job; raises a `Problem`."""
    metrics = gateway.metrics
    try:
        job, row = await _store_and_commit(
            gateway, request, owner=owner, file_field=file_field, parse_options=parse_options
        )
    except Exception as exc:
        outcome = str(exc.status) if isinstance(exc, Problem) else "error"
        metrics.uploads.labels(outcome=outcome).inc()
        raise
    metrics.uploads.labels(outcome="accepted").inc()
    metrics.upload_bytes.inc(job.input_bytes)
    metrics.job_transitions.labels(state=QUEUED).inc()
    await gateway.relay.publish_now([row])
    return job


async def _store_and_commit(
    gateway: Gateway,
    request: Request,
    *,
    owner: Owner,
    file_field: str | None,
    parse_options: OptionsParser,
) -> tuple[Job, OutboxMessage]:
    settings = gateway.settings
    reject_oversized(request, max_bytes=settings.max_upload_bytes)
    job_id = str(uuid4())
    key = f"videos/{job_id}"
    log = _log.bind(job_id=job_id, user_id=owner.user_id)
    upload = await receive_upload(
        request.stream(),
        content_type=request.headers.get("content-type", ""),
        blobs=gateway.blobs,
        key=key,
        max_bytes=settings.max_upload_bytes,
        chunk_bytes=settings.upload_chunk_bytes,
    )
    try:
        job = await _job_from_upload(
            gateway, upload, job_id=job_id, owner=owner, file_field=file_field, parse=parse_options
        )
        row = await create_job(gateway.sessions, job)
    except BaseException as exc:
        if upload.file_count:
            # Shielded: a client disconnect cancelling this task must not leave the file behind.
            await asyncio.shield(gateway.blobs.delete(key))
        log.info("upload.rejected", reason=str(exc)[:200], error_type=type(exc).__name__)
        raise
    log.info("job.submitted", bytes=upload.size_bytes, container=job.input_container)
    return job, row


async def _job_from_upload(
    gateway: Gateway,
    upload: Upload,
    *,
    job_id: str,
    owner: Owner,
    file_field: str | None,
    parse: OptionsParser,
) -> Job:
    if upload.file_count != 1 or (file_field is not None and upload.file_field != file_field):
        what = f"one file part named `{file_field}`" if file_field else "exactly 1 file"
        raise WrongFileCount(f"{what} is required")
    options = parse(upload.fields)
    async with gateway.blobs.local_path(f"videos/{job_id}") as path:
        facts = await probe_media(path, timeout_seconds=gateway.settings.probe_timeout_seconds)
    return new_job(
        job_id=job_id,
        fid=new_fid(),
        owner=owner,
        original_filename=upload.filename,
        options=options,
        facts=facts,
        input_bytes=upload.size_bytes,
    )
