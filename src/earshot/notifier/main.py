"""Entry points of the notifier process: `prepare` (migrations) and `run` (the worker loop)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from earshot.common.db import create_engine, migrate, session_factory
from earshot.common.logging import configure_logging
from earshot.common.mail import Mailer, MailError, open_mailer
from earshot.common.queue import open_queue
from earshot.notifier.settings import NotifierSettings
from earshot.notifier.store import NotificationStore
from earshot.notifier.worker import consume_notifications

MIGRATIONS = "earshot.notifier:migrations"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def prepare(settings: NotifierSettings) -> None:
    """Create or upgrade the notifier database (idempotent)."""
    engine = create_engine(settings.notifier_database_url)
    try:
        await migrate(engine, MIGRATIONS)
    finally:
        await engine.dispose()


def run(settings: NotifierSettings) -> None:
    """Run the notifier until SIGTERM or SIGINT, then finish the email in flight and close all."""
    configure_logging(service="notifier", level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))


async def serve(settings: NotifierSettings, *, stop: asyncio.Event | None = None) -> None:
    """Migrate, build the adapters from settings and consume until `stop` (or a signal) is set."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    await prepare(settings)
    engine = create_engine(settings.notifier_database_url)
    queue = open_queue(
        settings.broker_url,
        poll_seconds=settings.queue_poll_seconds,
        lease_seconds=settings.queue_lease_seconds,
        max_deliveries=settings.queue_max_deliveries,
    )
    mailer = open_mailer(settings.smtp_url, outbox_dir=settings.outbox_dir)
    try:
        await _report_mailer(mailer)
        store = NotificationStore(
            session_factory(engine), claim_lease_seconds=settings.notifier_claim_lease_seconds
        )
        await consume_notifications(queue, store=store, mailer=mailer, settings=settings, stop=stop)
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        await queue.close()
        await engine.dispose()
        structlog.get_logger().info("notifier.stopped")


async def _report_mailer(mailer: Mailer) -> None:
    # A mail server that is down now may be up later: warn, and let the retries cover the gap.
    try:
        await mailer.check()
    except MailError as exc:
        structlog.get_logger().warning("notifier.mailer_unreachable", error=str(exc))
    else:
        structlog.get_logger().info("notifier.mailer_ready", mailer=type(mailer).__name__)
