"""Transactional outbox: a committed job is delivered even when the broker or the process fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from earshot.common.messages import JOBS_QUEUE, utcnow
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.gateway.deps import Gateway
from earshot.gateway.jobs import create_job
from earshot.gateway.models import OutboxMessage
from earshot.gateway.settings import GatewaySettings
from tests.unit.gateway.helpers import (
    FlakyQueue,
    TokenMaker,
    a_job,
    drain,
    file_part,
    multipart,
    submitted,
    take,
)


async def outbox_rows(gateway: Gateway) -> list[OutboxMessage]:
    async with gateway.sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_broker_down_at_upload_still_answers_success_and_relays_later(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    queue: FlakyQueue,
    embedded_queue: EmbeddedQueue,
    gateway: Gateway,
) -> None:
    # given the broker is down
    queue.down = True
    body, content_type = multipart(file_part(h264_mp4))

    # when a user uploads
    response = await client.post(
        "/upload", content=body, headers={**tokens.headers(), "Content-Type": content_type}
    )

    # then the job is durable and waits in the outbox, not on the queue
    assert response.status_code == 200
    job_id = response.json()["job_id"]
    [row] = await outbox_rows(gateway)
    assert (row.queue, row.message_id, row.published_at) == (
        JOBS_QUEUE,
        f"{job_id}:submitted",
        None,
    )
    assert await drain(embedded_queue, JOBS_QUEUE) == []

    # when the broker is back, the relay delivers it once
    queue.down = False
    assert await gateway.relay.relay_once() == 1
    assert submitted(await take(embedded_queue, JOBS_QUEUE)).job_id == job_id
    [row] = await outbox_rows(gateway)
    assert row.published_at is not None
    assert await gateway.relay.relay_once() == 0


async def test_relay_loop_backs_off_while_the_broker_is_down_then_delivers(
    gateway: Gateway, queue: FlakyQueue, embedded_queue: EmbeddedQueue
) -> None:
    queue.down = True
    await create_job(gateway.sessions, a_job("j1"))
    stop = asyncio.Event()
    relay = asyncio.create_task(gateway.relay.run(stop))
    try:
        await asyncio.sleep(0.3)
        assert await gateway.relay.pending_count() == 1

        queue.down = False

        assert submitted(await take(embedded_queue, JOBS_QUEUE)).job_id == "j1"
    finally:
        stop.set()
        await relay
    assert await gateway.relay.pending_count() == 0


async def test_a_crash_between_commit_and_publish_is_delivered_after_restart(
    gateway: Gateway, make_app: Callable[..., FastAPI], embedded_queue: EmbeddedQueue
) -> None:
    # given a job committed by a gateway that died before publishing
    await create_job(gateway.sessions, a_job("j-crash"))

    # when a new gateway starts
    restarted = make_app()
    async with restarted.router.lifespan_context(restarted):
        delivery = await take(embedded_queue, JOBS_QUEUE)

    # then the job is delivered
    assert submitted(delivery).job_id == "j-crash"


async def test_publishing_twice_delivers_once(
    gateway: Gateway, queue: FlakyQueue, embedded_queue: EmbeddedQueue
) -> None:
    row = await create_job(gateway.sessions, a_job("j-dup"))
    await gateway.relay.publish_now([row])
    # a relay that crashed before marking the row publishes it again
    async with gateway.sessions() as session, session.begin():
        await session.execute(update(OutboxMessage).values(published_at=None))
    await gateway.relay.relay_once()

    assert [submitted(d).job_id for d in await drain(embedded_queue, JOBS_QUEUE)] == ["j-dup"]


async def test_old_published_rows_are_pruned(gateway: Gateway, settings: GatewaySettings) -> None:
    for job_id in ("old", "new", "unpublished"):
        await create_job(gateway.sessions, a_job(job_id))
    long_ago = utcnow() - timedelta(seconds=settings.outbox_retention_seconds + 60)
    async with gateway.sessions() as session, session.begin():
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.message_id == "old:submitted")
            .values(published_at=long_ago)
        )
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.message_id == "new:submitted")
            .values(published_at=utcnow())
        )

    assert await gateway.relay.prune() == 1
    assert [r.message_id for r in await outbox_rows(gateway)] == [
        "new:submitted",
        "unpublished:submitted",
    ]


async def test_a_broker_that_blocks_publishers_does_not_hang_uploads(
    make_app: Callable[..., FastAPI],
    settings: GatewaySettings,
    tokens: TokenMaker,
    h264_mp4: Path,
    queue: FlakyQueue,
) -> None:
    queue.hanging = True
    app = make_app(settings=settings.model_copy(update={"outbox_publish_timeout_seconds": 0.2}))
    body, content_type = multipart(file_part(h264_mp4))

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await asyncio.wait_for(
            client.post(
                "/upload", content=body, headers={**tokens.headers(), "Content-Type": content_type}
            ),
            timeout=5,
        )

    assert response.status_code == 200
    assert await app.state.gateway.relay.pending_count() == 1
