"""Reconcile storage with the jobs database: files that no job points to are deleted.

A gateway that dies after storing an upload but before committing its job leaves a video no job
points to; a job deleted while the store was failing leaves its audio (and video) behind. Such
files are deleted once older than any upload or conversion could still be in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from earshot.common.blobs import BlobStore
from earshot.common.messages import utcnow
from earshot.gateway.models import Job

INPUT_PREFIX = "videos/"
OUTPUT_PREFIX = "audio/"
# Keys looked up in one query: the stored audio of every job is listed each sweep.
LOOKUP_BATCH = 500
# Each kind of stored file, and the column of the job that owns it.
_OWNED_BY = ((INPUT_PREFIX, Job.input_key), (OUTPUT_PREFIX, Job.output_key))
_log = structlog.get_logger()


async def sweep_orphan_blobs(
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    *,
    older_than_seconds: float,
    batch_size: int = LOOKUP_BATCH,
) -> int:
    """Delete stored videos and audio older than the threshold that belong to no job; how many."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    removed = 0
    for prefix, owner_column in _OWNED_BY:
        batch: list[str] = []
        async for key in blobs.list_keys(prefix):
            batch.append(key)
            if len(batch) == batch_size:
                removed += await _delete_unowned(sessions, blobs, batch, owner_column, cutoff)
                batch = []
        removed += await _delete_unowned(sessions, blobs, batch, owner_column, cutoff)
    return removed


async def _delete_unowned(
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    keys: list[str],
    owner_column: InstrumentedAttribute[str],
    cutoff: datetime,
) -> int:
    if not keys:
        return 0
    async with sessions() as session:
        owned = set(await session.scalars(select(owner_column).where(owner_column.in_(keys))))
    removed = 0
    # Only files no job owns are looked at (one stat each): owned files cost no store request.
    for key in (key for key in keys if key not in owned):
        info = await blobs.stat(key)
        if info is not None and info.modified_at <= cutoff:
            await blobs.delete(key)
            removed += 1
            _log.info("housekeeping.orphan_blob_deleted", key=key)
    return removed


async def run_housekeeping(
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    *,
    stop: asyncio.Event,
    every_seconds: float,
    older_than_seconds: float,
) -> None:
    """Sweep now and then every `every_seconds` until `stop`; failures are logged, not fatal."""
    while not stop.is_set():
        try:
            await sweep_orphan_blobs(sessions, blobs, older_than_seconds=older_than_seconds)
        except Exception as exc:  # storage or database down: try again next round
            _log.warning("housekeeping.failed", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)
