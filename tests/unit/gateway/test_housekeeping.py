"""Housekeeping: stored files that no job points to are deleted once old enough."""

from __future__ import annotations

import os
import time

from earshot.common.blobs.folder import FolderBlobStore
from earshot.gateway.deps import Gateway
from earshot.gateway.housekeeping import sweep_orphan_blobs
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

    removed = await sweep_orphan_blobs(gateway.sessions, blobs, older_than_seconds=3600)

    assert removed == 1
    assert await blob_keys(blobs) == ["videos/in-flight", "videos/kept"]


async def test_old_audio_of_a_job_that_is_gone_is_deleted(
    gateway: Gateway, blobs: FolderBlobStore
) -> None:
    # given the audio of a live job, and of a job deleted while the store could not remove it
    job = a_job("alive")
    await create_job(gateway.sessions, job)
    await store(blobs, job.output_key, age_seconds=7200)
    await store(blobs, "audio/fid-deleted.mp3", age_seconds=7200)

    removed = await sweep_orphan_blobs(gateway.sessions, blobs, older_than_seconds=3600)

    # then only the audio nobody owns is gone
    assert removed == 1
    assert await blob_keys(blobs) == [job.output_key]


async def test_many_files_are_checked_in_batches_without_missing_any(
    gateway: Gateway, blobs: FolderBlobStore
) -> None:
    # given five old videos, two of them owned by jobs, and lookups of two keys at a time
    for name in ("a", "b", "c", "d", "e"):
        await store(blobs, f"videos/{name}", age_seconds=7200)
    for name in ("b", "e"):
        await create_job(gateway.sessions, a_job(name))

    removed = await sweep_orphan_blobs(
        gateway.sessions, blobs, older_than_seconds=3600, batch_size=2
    )

    assert removed == 3
    assert await blob_keys(blobs) == ["videos/b", "videos/e"]
