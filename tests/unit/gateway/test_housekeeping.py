"""Housekeeping: uploads stored by a gateway that died before committing the job are deleted."""

from __future__ import annotations

import os
import time

from earshot.common.blobs.folder import FolderBlobStore
from earshot.gateway.deps import Gateway
from earshot.gateway.housekeeping import sweep_orphan_inputs
from earshot.gateway.jobs import create_job
from tests.unit.gateway.helpers import a_job, blob_keys


async def store(blobs: FolderBlobStore, key: str, *, age_seconds: float) -> None:
    async with blobs.open_write(key) as writer:
        await writer.write(b"video")
    stamp = time.time() - age_seconds
    os.utime(blobs.root / key, (stamp, stamp))


async def test_only_old_inputs_without_a_job_are_deleted(
    gateway: Gateway, blobs: FolderBlobStore
) -> None:
    # given an old upload whose job was committed, an old orphan, and a fresh upload in flight
    await create_job(gateway.sessions, a_job("kept"))
    await store(blobs, "videos/kept", age_seconds=7200)
    await store(blobs, "videos/orphan", age_seconds=7200)
    await store(blobs, "videos/in-flight", age_seconds=5)

    removed = await sweep_orphan_inputs(gateway.sessions, blobs, older_than_seconds=3600)

    assert removed == 1
    assert await blob_keys(blobs) == ["videos/in-flight", "videos/kept"]
