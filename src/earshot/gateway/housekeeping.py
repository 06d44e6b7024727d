"""Reconcile storage with the jobs database: inputs stored by an upload that never became a job.

A gateway that dies after storing an upload but before committing its job leaves a video no job
points to. Such files are deleted once older than any upload could still be in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.common.blobs import BlobStore
from earshot.common.messages import utcnow
from earshot.gateway.models import Job

INPUT_PREFIX = "videos/"
_log = structlog.get_logger()


async def sweep_orphan_inputs(
    sessions: async_sessionmaker[AsyncSession], blobs: BlobStore, *, older_than_seconds: float
) -> int:
    """Delete stored inputs older than the threshold that belong to no job; how many were."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    removed = 0
    async for key in blobs.list_keys(INPUT_PREFIX):
        info = await blobs.stat(key)
        if info is None or info.modified_at > cutoff:
            continue
        async with sessions() as session:
            owner = await session.scalar(select(Job.id).where(Job.input_key == key))
        if owner is None:
            await blobs.delete(key)
            removed += 1
            _log.info("housekeeping.orphan_input_deleted", key=key)
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
            await sweep_orphan_inputs(sessions, blobs, older_than_seconds=older_than_seconds)
        except Exception as exc:  # storage or database down: try again next round
            _log.warning("housekeeping.failed", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)
