"""Notifier test fixtures: settings in a temp data dir, the real SQLite database and queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from earshot.common.db import create_engine, session_factory
from earshot.common.mail import Mailer, open_mailer
from earshot.common.queue import MessageQueue, open_queue
from earshot.notifier.main import prepare
from earshot.notifier.settings import NotifierSettings
from earshot.notifier.store import NotificationStore
from earshot.notifier.worker import consume_notifications
from tests.smtp_sink import SmtpSink

StartLoop = Callable[..., Awaitable[asyncio.Task[None]]]


@pytest.fixture
def settings(tmp_path: Path) -> NotifierSettings:
    """Fast retries and polling; everything under `tmp_path`; no `.env` read."""
    return NotifierSettings(
        _env_file=None,
        data_dir=tmp_path,
        queue_poll_seconds=0.02,
        queue_lease_seconds=2.0,
        notifier_max_attempts=20,
        notifier_retry_backoff_base_seconds=0.05,
        notifier_retry_backoff_max_seconds=0.2,
    )


@pytest.fixture
async def store(settings: NotifierSettings) -> AsyncIterator[NotificationStore]:
    """The notifier's real database, migrated."""
    await prepare(settings)
    engine = create_engine(settings.notifier_database_url)
    try:
        yield NotificationStore(session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture
async def queue(settings: NotifierSettings) -> AsyncIterator[MessageQueue]:
    """The real embedded queue in the temp data dir."""
    opened = open_queue(
        settings.broker_url,
        poll_seconds=settings.queue_poll_seconds,
        lease_seconds=settings.queue_lease_seconds,
        max_deliveries=settings.queue_max_deliveries,
    )
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def outbox_mailer(settings: NotifierSettings) -> Mailer:
    """The embedded mail adapter writing into DATA_DIR/outbox."""
    return open_mailer("", outbox_dir=settings.outbox_dir)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP server on loopback, not yet started (tests decide when it is up)."""
    sink = SmtpSink()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
async def start_loop(
    queue: MessageQueue, store: NotificationStore, settings: NotifierSettings
) -> AsyncIterator[StartLoop]:
    """Start the notifier loop with a given mailer; it is stopped (and must end) at teardown."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def start(
        mailer: Mailer, *, with_settings: NotifierSettings | None = None
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(
            consume_notifications(
                queue, store=store, mailer=mailer, settings=with_settings or settings, stop=stop
            )
        )
        tasks.append(task)
        return task

    try:
        yield start
    finally:
        stop.set()
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
