"""Admins list dead-lettered messages and redrive them; a redriven job is reopened."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from earshot.common.messages import JOBS_QUEUE, JobFailed
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.gateway.deps import Gateway
from earshot.gateway.events import JobEventHandler
from tests.unit.gateway.helpers import BOB, TokenMaker, file_part, multipart, submitted, take


async def a_dead_lettered_job(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    gateway: Gateway,
    queue: EmbeddedQueue,
    video: Path,
) -> str:
    """Given: a job whose conversion kept failing until its message was dead-lettered."""
    body, content_type = multipart(file_part(video))
    created = await client.post(
        "/api/v1/jobs", content=body, headers={**tokens.headers(), "Content-Type": content_type}
    )
    assert created.status_code == 202, created.text
    job_id: str = created.json()["id"]
    deliveries = queue.consume(JOBS_QUEUE)
    try:
        delivery = await asyncio.wait_for(anext(deliveries), 5)
    finally:
        await deliveries.aclose()  # type: ignore[attr-defined]
    reason = "gave up after 3 attempts: FfmpegFailed: ffmpeg was killed by signal 11"
    handler = JobEventHandler(gateway.sessions, gateway.blobs, gateway.relay, public_url="http://g")
    await handler.apply(JobFailed(job_id=job_id, reason=reason, permanent=False))
    await delivery.dead_letter(reason=reason)
    return job_id


async def test_admins_list_and_redrive_a_dead_lettered_job(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    gateway: Gateway,
    embedded_queue: EmbeddedQueue,
    h264_mp4: Path,
) -> None:
    job_id = await a_dead_lettered_job(client, tokens, gateway, embedded_queue, h264_mp4)
    failed = await client.get(f"/api/v1/jobs/{job_id}", headers=tokens.headers())
    assert failed.json()["state"] == "failed"

    # when an admin lists the dead letters of the jobs queue
    admin = tokens.headers(BOB, admin=True)
    listed = await client.get("/api/v1/admin/dead-letters/video", headers=admin)
    assert listed.status_code == 200
    [letter] = listed.json()
    assert letter["job_id"] == job_id and "signal 11" in letter["reason"]

    # and redrives it
    redriven = await client.post(
        f"/api/v1/admin/dead-letters/video/{letter['message_id']}/redrive", headers=admin
    )
    assert redriven.status_code == 204, redriven.text

    # then the job is queued again, its input still there, and a converter gets it once more
    reopened = (await client.get(f"/api/v1/jobs/{job_id}", headers=tokens.headers())).json()
    assert (reopened["state"], reopened["error"]) == ("queued", None)
    again = submitted(await take(embedded_queue, JOBS_QUEUE))
    assert again.job_id == job_id
    assert await gateway.blobs.stat(again.input_key) is not None
    assert (await client.get("/api/v1/admin/dead-letters/video", headers=admin)).json() == []


async def test_dead_letters_are_for_admins_only_and_name_real_queues(
    client: httpx.AsyncClient, tokens: TokenMaker
) -> None:
    denied = await client.get("/api/v1/admin/dead-letters/video", headers=tokens.headers())
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    unknown = await client.get(
        "/api/v1/admin/dead-letters/nope", headers=tokens.headers(BOB, admin=True)
    )
    assert unknown.status_code == 404
    missing = await client.post(
        "/api/v1/admin/dead-letters/video/nothing-here/redrive",
        headers=tokens.headers(BOB, admin=True),
    )
    assert missing.status_code == 404
