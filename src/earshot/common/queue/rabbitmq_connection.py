"""One robust RabbitMQ connection: opened on first use, its topology declared, publishing confirmed.

aio-pika's robust connection reconnects by itself and restores its channels with their qos,
declarations, bindings and consumers; this class adds what it leaves to the application: a publish
that failed with the connection is retried until a deadline, and a publish is reported done only
when the broker confirmed it (a returned or nacked message raises `QueueError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
    AbstractRobustQueue,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError, PublishError
from yarl import URL

from earshot.common.queue import QueueError
from earshot.common.queue.rabbitmq_topology import (
    EXCHANGE,
    bind_queue,
    dead_letter_queue_of,
    declare_exchanges,
    declare_queue,
    declare_retry_queue,
)

# Where a message goes: its queue, its dead-letter queue, or a retry bucket (milliseconds).
Target = Literal["queue", "dead"] | int

RECONNECT_INTERVAL_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 5.0
TRANSIENT_ERRORS = (*CONNECTION_EXCEPTIONS, QueueError)
_log = structlog.get_logger()


class RefusedError(QueueError):
    """The broker nacked a message: it did not take it (a full queue, an internal error)."""


@dataclass(slots=True)
class Session:
    """The channels of one connection and what was declared on them."""

    connection: AbstractRobustConnection
    publishing: AbstractRobustChannel
    consuming: AbstractRobustChannel
    exchange: AbstractRobustExchange
    dead_exchange: AbstractRobustExchange
    # Queues declared (so routable) since this session opened.
    queues: set[str] = field(default_factory=set)
    consumed: dict[str, AbstractRobustQueue] = field(default_factory=dict)
    retries: dict[int, AbstractExchange] = field(default_factory=dict)


class RabbitMQConnection:
    """A lazily opened robust connection with a confirming and a consuming channel."""

    def __init__(
        self,
        url: str,
        *,
        max_deliveries: int,
        prefetch: int,
        publish_timeout_seconds: float,
        connect_timeout_seconds: float,
    ) -> None:
        parsed = URL(url)
        if "reconnect_interval" not in parsed.query:
            parsed = parsed.update_query(reconnect_interval=RECONNECT_INTERVAL_SECONDS)
        self._url = parsed
        self.safe_url = str(parsed.with_password("***") if parsed.password else parsed)
        self.max_deliveries = max_deliveries
        self._prefetch = prefetch
        self._publish_timeout_seconds = publish_timeout_seconds
        self._connect_timeout_seconds = connect_timeout_seconds
        self._session: Session | None = None
        self._opening = asyncio.Lock()
        self._declared: set[str] = set()
        self.closed = False

    @property
    def declared_queues(self) -> frozenset[str]:
        """Every queue declared through this connection (dead-letter and retry queues included)."""
        return frozenset(self._declared)

    async def session(self) -> Session:
        """The open session; connects (and declares the exchanges) on first use."""
        async with self._opening:
            if self.closed:
                raise QueueError("the queue is closed")
            if self._session is None:
                self._session = await self._open()
            return self._session

    async def consumable(self, queue: str) -> AbstractRobustQueue:
        """`queue` on the consuming channel, ready for `consume`."""
        session = await self.session()
        if queue not in session.consumed:
            await self.declare(queue)
            # Passive: restoring it after a reconnection can never fail on its arguments.
            consumed = await session.consuming.declare_queue(queue, passive=True)
            session.consumed[queue] = consumed
        return session.consumed[queue]

    async def declare(self, queue: str) -> None:
        """Declare `queue` and its dead-letter queue (idempotent)."""
        async with self.scratch_channel() as channel:
            same = await declare_queue(channel, queue, max_deliveries=self.max_deliveries)
        if not same:
            # Declared with another delivery limit before: keep it (the adapter enforces its own
            # limit anyway); changing it takes a drained, deleted queue.
            _log.warning("queue.arguments_differ", queue=queue, max_deliveries=self.max_deliveries)
            async with self.scratch_channel() as channel:
                await bind_queue(channel, queue)
        self._declared.update((queue, dead_letter_queue_of(queue)))

    async def send(
        self, message: aio_pika.Message, *, queue: str, target: Target, patient: bool
    ) -> None:
        """Publish with a confirm; `patient` retries through reconnections until the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout_seconds
        pause = 0.1
        while True:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.5)):
                    await self._publish_once(message, queue=queue, target=target)
                return
            except RefusedError:
                raise
            except TRANSIENT_ERRORS as exc:
                if self.closed or not patient or loop.time() >= deadline:
                    raise QueueError(f"RabbitMQ: publishing to {queue!r} failed: {exc!r}") from exc
                _log.warning("queue.publish_retrying", queue=queue, error=repr(exc))
            await self._until_ready(deadline, pause=pause)
            pause = min(pause * 2, 1.0)

    @contextlib.asynccontextmanager
    async def scratch_channel(self) -> AsyncIterator[AbstractRobustChannel]:
        """A short-lived channel: closing it returns what it got and did not ack."""
        session = await self.session()
        try:
            channel = await session.connection.channel(publisher_confirms=False)
        except CONNECTION_EXCEPTIONS as exc:
            raise QueueError(f"RabbitMQ {self.safe_url}: {exc!r}") from exc
        try:
            yield channel
        except CONNECTION_EXCEPTIONS as exc:
            raise QueueError(f"RabbitMQ {self.safe_url}: {exc!r}") from exc
        finally:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await channel.close()

    async def check(self) -> None:
        """Raise `QueueError` unless the broker answers on this connection now."""
        session = await self.session()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                channel = await session.publishing.get_underlay_channel()
                await channel.exchange_declare(exchange=EXCHANGE, passive=True)
        except CONNECTION_EXCEPTIONS as exc:
            raise QueueError(f"RabbitMQ {self.safe_url} is not ready: {exc!r}") from exc

    async def close(self) -> None:
        """Close the connection; the broker puts every unacked delivery back."""
        self.closed = True
        async with self._opening:
            session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await session.connection.close()

    async def _open(self) -> Session:
        try:
            connection = await aio_pika.connect_robust(
                self._url,
                timeout=self._connect_timeout_seconds,
                client_properties={"connection_name": f"earshot pid {os.getpid()}"},
            )
        except CONNECTION_EXCEPTIONS as exc:
            raise QueueError(f"RabbitMQ {self.safe_url} is unreachable: {exc!r}") from exc
        try:
            publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
            consuming = await connection.channel(publisher_confirms=False)
            await consuming.set_qos(prefetch_count=self._prefetch)
            exchange, dead_exchange = await declare_exchanges(publishing)
        except BaseException as exc:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await connection.close()
            if isinstance(exc, CONNECTION_EXCEPTIONS):
                raise QueueError(f"RabbitMQ {self.safe_url}: {exc!r}") from exc
            raise
        return Session(connection, publishing, consuming, exchange, dead_exchange)

    async def _publish_once(self, message: aio_pika.Message, *, queue: str, target: Target) -> None:
        session = await self.session()
        if queue not in session.queues:
            # Declared before the first publish, so a message never waits for its consumer.
            await self.declare(queue)
            session.queues.add(queue)
        exchange: AbstractExchange = session.exchange
        routing_key = queue
        if target == "dead":
            exchange, routing_key = session.dead_exchange, dead_letter_queue_of(queue)
        elif isinstance(target, int):
            exchange = await self._retry_exchange(session, target)
        try:
            await exchange.publish(message, routing_key, mandatory=True)
        except PublishError as exc:
            # Returned unroutable (was the queue deleted?): declare it again next time.
            session.queues.discard(queue)
            raise QueueError(f"RabbitMQ returned a message for {queue!r}: not routed") from exc
        except DeliveryError as exc:
            raise RefusedError(f"RabbitMQ refused a message for {queue!r} (nack)") from exc

    async def _retry_exchange(self, session: Session, bucket_ms: int) -> AbstractExchange:
        if bucket_ms not in session.retries:
            async with self.scratch_channel() as channel:
                name = await declare_retry_queue(channel, bucket_ms)
            self._declared.add(name)
            exchange = await session.publishing.get_exchange(name, ensure=False)
            session.retries[bucket_ms] = exchange
        return session.retries[bucket_ms]

    async def _until_ready(self, deadline: float, *, pause: float) -> None:
        """Wait for the publishing channel to be back (bounded by `deadline`), then `pause`."""
        session = self._session
        if session is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            with contextlib.suppress(TimeoutError, *CONNECTION_EXCEPTIONS):
                async with asyncio.timeout(max(remaining, 0)):
                    await session.publishing.ready()
        # Ready is not the same as able (a broker still starting): never retry in a tight loop.
        await asyncio.sleep(pause)
