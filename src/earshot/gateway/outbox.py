"""Transactional outbox: a message is committed with the change that causes it, then relayed.

Publishing happens after the commit, so a crash or a broker outage can never leave a job without its
message: the row waits in `outbox` until the relay publishes it. The relay may publish a row twice
(crash between publish and mark); the message id stays the same, and consumers are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.common.messages import utcnow
from earshot.common.queue import MessageQueue
from earshot.gateway.models import OutboxMessage

RELAY_BATCH_SIZE = 100
PRUNE_INTERVAL_SECONDS = 600.0

_log = structlog.get_logger()


def stage(session: AsyncSession, *, queue: str, message_id: str, body: bytes) -> OutboxMessage:
    """Add a message to the outbox inside the caller's transaction."""
    row = OutboxMessage(queue=queue, message_id=message_id, body=body, created_at=utcnow())
    session.add(row)
    return row


class OutboxRelay:
    """Publishes committed outbox rows: at once after a commit, and from a background loop."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queue: MessageQueue,
        *,
        poll_seconds: float = 1.0,
        backoff_max_seconds: float = 30.0,
        retention_seconds: float = 86400.0,
        publish_timeout_seconds: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._poll_seconds = poll_seconds
        self._backoff_max_seconds = backoff_max_seconds
        self._retention = timedelta(seconds=retention_seconds)
        self._publish_timeout_seconds = publish_timeout_seconds

    async def publish_now(self, rows: Sequence[OutboxMessage]) -> bool:
        """Try to publish freshly committed rows; on failure the relay delivers them later."""
        try:
            for row in rows:
                await self._publish(row)
        except Exception as exc:  # the rows stay durable in the outbox; the caller still succeeds
            _log.warning("outbox.publish_deferred", error=str(exc), error_type=type(exc).__name__)
            return False
        return True

    async def relay_once(self) -> int:
        """Publish every unpublished row, oldest first; raises when the broker or database fails."""
        published = 0
        while True:
            async with self._sessions() as session:
                result = await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.published_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(RELAY_BATCH_SIZE)
                )
                rows = list(result)
            for row in rows:
                await self._publish(row)
                published += 1
            if len(rows) < RELAY_BATCH_SIZE:
                return published

    async def prune(self) -> int:
        """Delete published rows older than the retention period."""
        cutoff = utcnow() - self._retention
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(OutboxMessage).where(OutboxMessage.published_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def pending_count(self) -> int:
        """How many rows wait to be published."""
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.published_at.is_(None))
            )
            return int(count or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set, backing off while the broker or the database is down."""
        failures = 0
        loop = asyncio.get_running_loop()
        last_prune = loop.time() - PRUNE_INTERVAL_SECONDS
        while not stop.is_set():
            try:
                count = await self.relay_once()
                if count:
                    _log.info("outbox.relayed", messages=count)
                if loop.time() - last_prune >= PRUNE_INTERVAL_SECONDS:
                    last_prune = loop.time()
                    await self.prune()
                failures = 0
            except Exception as exc:  # keep relaying after any outage; the rows are durable
                failures += 1
                _log.warning("outbox.relay_failed", error=str(exc), failures=failures)
            await self._sleep(stop, self._delay(failures))

    def _delay(self, failures: int) -> float:
        if failures == 0:
            return self._poll_seconds
        return min(self._backoff_max_seconds, self._poll_seconds * 2.0 ** min(failures, 16))

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    async def _publish(self, row: OutboxMessage) -> None:
        # A broker that blocks publishers (disk alarm, lock) must not hang uploads or the relay.
        await asyncio.wait_for(
            self._queue.publish(row.queue, row.body, message_id=row.message_id),
            self._publish_timeout_seconds,
        )
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.published_at.is_(None))
                .values(published_at=utcnow())
            )
