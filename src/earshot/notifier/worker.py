"""The notifier's handler: one `JobFinished` in, at most one email out per job outcome.

Order per delivery: parse and build the email (garbage is dead-lettered before anything is
recorded), claim the record (a `sent` or `failed` one means a redelivery: nothing to do), send,
mark `sent`; the loop acks after. A crash between sending and marking resends the same email (same
Message-ID, so the outbox keeps one file); every other redelivery sends nothing. Transient mail
errors are retried with backoff by `common.worker.run_consumer`, which dead-letters the message
once the attempts run out (the record stays `sending`, so a redrive sends it).
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import structlog
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from structlog.typing import FilteringBoundLogger

from earshot.common.mail import Mailer, MailError
from earshot.common.messages import NOTIFICATIONS_QUEUE, JobFinished
from earshot.common.queue import Delivery, MessageQueue
from earshot.common.worker import Heartbeat, PermanentError, TransientError, run_consumer
from earshot.notifier.emails import build_email, event_id, message_id
from earshot.notifier.settings import NotifierSettings
from earshot.notifier.store import ClaimConflict, NotificationStore


def parse_event(body: bytes) -> JobFinished:
    """The `JobFinished` in a message body; `PermanentError` when it is not one."""
    try:
        return JobFinished.model_validate_json(body)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise PermanentError(f"not a JobFinished message: {errors}") from exc


def _compose(event: JobFinished, *, mail_from: str) -> EmailMessage:
    try:
        return build_email(event, mail_from=mail_from)
    except (ValueError, TypeError) as exc:  # e.g. a recipient header the email package refuses
        raise PermanentError(f"cannot build the email: {exc}") from exc


class NotificationHandler:
    """Handles one delivery of the notifications queue (see the module docstring for the order)."""

    def __init__(
        self,
        *,
        store: NotificationStore,
        mailer: Mailer,
        mail_from: str,
        record_sent_timeout_seconds: float = 300.0,
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._mail_from = mail_from
        self._record_sent_timeout_seconds = record_sent_timeout_seconds

    async def __call__(self, delivery: Delivery) -> None:
        """Send the email this delivery asks for, unless it was already sent or failed for good."""
        event = parse_event(delivery.body)
        email = _compose(event, mail_from=self._mail_from)
        key = event_id(event)
        log = structlog.get_logger().bind(
            job_id=event.job_id, user_id=event.user_id, event_id=key, attempt=delivery.attempt
        )
        try:
            record = await self._store.claim(event, event_id=key, message_id=message_id(event))
        except ClaimConflict as exc:
            raise TransientError(f"{key} is being recorded by another consumer") from exc
        if record is None:
            log.info("notifier.already_handled")
            return
        try:
            await self._mailer.send(email)
        except MailError as exc:
            await self._send_failed(key, exc, log)
            return
        await self._record_sent(key, log)
        log.info("notifier.sent", outcome=event.outcome, attempts=record.attempts)

    async def _record_sent(self, key: str, log: FilteringBoundLogger) -> None:
        # The email is out: failing here would resend it on redelivery, so a database outage is
        # waited out (bounded) rather than turned into a retry of the whole delivery.
        deadline = asyncio.get_running_loop().time() + self._record_sent_timeout_seconds
        delay = 0.5
        while True:
            try:
                await self._store.mark_sent(key)
                return
            except SQLAlchemyError as exc:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                log.warning("notifier.record_sent_retry", error=str(exc)[:200], delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _send_failed(self, key: str, exc: MailError, log: FilteringBoundLogger) -> None:
        if exc.permanent:
            await self._store.mark_failed(key, error=str(exc))
            log.error("notifier.rejected", error=str(exc))
            return
        await self._store.note_error(key, error=str(exc))
        raise TransientError(str(exc)) from exc


async def consume_notifications(
    queue: MessageQueue,
    *,
    store: NotificationStore,
    mailer: Mailer,
    settings: NotifierSettings,
    stop: asyncio.Event,
) -> None:
    """Run the notifier loop on `NOTIFICATIONS_QUEUE` until `stop` is set."""
    handler = NotificationHandler(store=store, mailer=mailer, mail_from=settings.mail_from)
    await run_consumer(
        queue,
        NOTIFICATIONS_QUEUE,
        handler,
        stop=stop,
        max_attempts=settings.notifier_max_attempts,
        backoff_base_seconds=settings.notifier_retry_backoff_base_seconds,
        backoff_max_seconds=settings.notifier_retry_backoff_max_seconds,
        heartbeat=Heartbeat(path=settings.heartbeat_file),
        log=structlog.get_logger().bind(component="notifier"),
    )
