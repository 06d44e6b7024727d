"""The embedded queue: one SQLite file shared by every earshot process on one machine.

A delivery is a lease: the claimed row stays invisible until `visible_at`, which the holding process
keeps pushing forward while it lives. A process that dies stops renewing, so its messages come back
after `lease_seconds`. Statements run on a thread of their own; the event loop never waits on locks.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import uuid4

import structlog

from earshot.common.messages import dead_letter_queue
from earshot.common.queue import QueueError

T = TypeVar("T")
Settlement = Literal["ack", "retry", "dead_letter"]

BUSY_TIMEOUT_SECONDS = 10.0
_log = structlog.get_logger()

_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    visible_at REAL NOT NULL,
    lease_token TEXT,
    reason TEXT,
    published_at REAL NOT NULL,
    UNIQUE (queue, message_id)
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, seq);
CREATE INDEX IF NOT EXISTS messages_lease ON messages (lease_token) WHERE lease_token IS NOT NULL;
COMMIT;
"""


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the file's write lock up front (no upgrade deadlocks)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def _durably(conn: sqlite3.Connection) -> Iterator[None]:
    """Commits inside fsync the log: what they wrote survives a power cut, not only a crash."""
    conn.execute("PRAGMA synchronous = FULL")
    try:
        yield
    finally:
        conn.execute("PRAGMA synchronous = NORMAL")


def _move_to_dead(
    conn: sqlite3.Connection, seq: int, queue: str, message_id: str, reason: str
) -> None:
    dead = dead_letter_queue(queue)
    # The newest failure wins over an older dead copy of the same message.
    conn.execute("DELETE FROM messages WHERE queue = ? AND message_id = ?", (dead, message_id))
    conn.execute(
        "UPDATE messages SET queue = ?, reason = ?, deliveries = 0, visible_at = ?,"
        " lease_token = NULL WHERE seq = ?",
        (dead, reason, time.time(), seq),
    )


class _Database:
    """One connection on its own thread: statements never wait behind other blocking work."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="earshot-queue")
        self._conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` with the connection (opened on first use) on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    async def close(self) -> None:
        """Close the connection and let the thread end."""
        self.closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return fn(self._conn)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL: lease bookkeeping skips fsync (a power cut restarts every holder anyway);
            # publishing switches to FULL for its own commit, see `_durably`.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn


@dataclass(frozen=True, slots=True)
class EmbeddedDelivery:
    """A leased message of an `EmbeddedQueue`."""

    message_id: str
    body: bytes
    attempt: int
    seq: int
    token: str
    _owner: EmbeddedQueue = field(repr=False)

    async def ack(self) -> None:
        """Remove the message."""
        await self._owner._settle(self, "ack")

    async def retry(self, *, delay_seconds: float) -> None:
        """Give the message back, visible again after `delay_seconds`."""
        await self._owner._settle(self, "retry", delay_seconds=delay_seconds)

    async def dead_letter(self, *, reason: str) -> None:
        """Move the message to the dead-letter queue."""
        await self._owner._settle(self, "dead_letter", reason=reason)


class EmbeddedQueue:
    """A durable, at-least-once `MessageQueue` in one SQLite file (WAL) shared by processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        poll_seconds: float = 0.2,
        lease_seconds: float = 30.0,
        max_deliveries: int = 10,
    ) -> None:
        if poll_seconds <= 0 or lease_seconds <= 0 or max_deliveries < 1:
            raise ValueError("poll_seconds and lease_seconds must be > 0, max_deliveries >= 1")
        self._db = _Database(Path(path))
        self._poll_seconds = poll_seconds
        self._lease_seconds = lease_seconds
        self._max_deliveries = max_deliveries
        self._held: dict[str, EmbeddedDelivery] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False

    async def publish(self, queue: str, body: bytes, *, message_id: str) -> None:
        """Store the message (once per `message_id` while queued); returns after the commit."""
        if self._closed:
            raise QueueError("the queue is closed")

        def insert(conn: sqlite3.Connection) -> int:
            now = time.time()
            with _durably(conn):
                cursor = conn.execute(
                    "INSERT INTO messages (queue, message_id, body, visible_at, published_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (queue, message_id) DO NOTHING",
                    (queue, message_id, body, now, now),
                )
            return cursor.rowcount

        if await self._call(insert) == 0:
            _log.debug("queue.duplicate_ignored", queue=queue, message_id=message_id)

    async def consume(self, queue: str) -> AsyncIterator[EmbeddedDelivery]:
        """Deliveries from `queue` until the queue is closed; leases renew while held."""
        self._ensure_renewer()
        while not self._closed:
            claim = self._track(asyncio.create_task(self._claim(queue)))
            try:
                # Shielded: a claim committed by the thread must not vanish with a cancelled caller.
                delivery = await asyncio.shield(claim)
            except asyncio.CancelledError:
                claim.add_done_callback(self._hand_back_orphan)
                raise
            if delivery is None:
                await asyncio.sleep(self._poll_seconds)
            elif not self._closed:
                # Once closing, the claim is `close`'s to hand back, not the caller's to handle.
                yield delivery

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[tuple[str, bytes, str]]:
        """Dead-lettered messages of `queue` as (message_id, body, reason), oldest first."""

        def select(conn: sqlite3.Connection) -> list[tuple[str, bytes, str]]:
            rows = conn.execute(
                "SELECT message_id, body, reason FROM messages"
                " WHERE queue = ? ORDER BY seq LIMIT ?",
                (dead_letter_queue(queue), limit),
            ).fetchall()
            return [(str(m), bytes(b), str(r or "")) for m, b, r in rows]

        return await self._call(select)

    async def redrive(self, queue: str, message_id: str) -> bool:
        """Move one dead-lettered message back to `queue` with a fresh delivery count."""

        def move(conn: sqlite3.Connection) -> bool:
            with _immediate(conn):
                row = conn.execute(
                    "SELECT seq FROM messages WHERE queue = ? AND message_id = ?",
                    (dead_letter_queue(queue), message_id),
                ).fetchone()
                if row is None:
                    return False
                queued = conn.execute(
                    "SELECT 1 FROM messages WHERE queue = ? AND message_id = ?", (queue, message_id)
                ).fetchone()
                if queued is not None:
                    # Already republished: keep the single queued copy.
                    conn.execute("DELETE FROM messages WHERE seq = ?", (row[0],))
                    return True
                conn.execute(
                    "UPDATE messages SET queue = ?, reason = NULL, deliveries = 0, visible_at = ?,"
                    " lease_token = NULL WHERE seq = ?",
                    (queue, time.time(), row[0]),
                )
                return True

        return await self._call(move)

    async def check(self) -> None:
        """Raise `QueueError` when the file cannot be opened or read."""
        if self._closed:
            raise QueueError("the queue is closed")
        await self._call(lambda conn: conn.execute("SELECT count(*) FROM messages").fetchone())

    async def close(self) -> None:
        """Stop renewing leases and hand every unsettled delivery back at once."""
        if self._closed:
            return
        self._closed = True
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.wait([self._renewer])
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        held, self._held = list(self._held.values()), {}
        try:
            if held:
                await self._call(partial(self._release, held=held))
        finally:
            await self._db.close()

    async def _claim(self, queue: str) -> EmbeddedDelivery | None:
        if self._closed:
            return None
        token = uuid4().hex
        claimed, poisoned = await self._call(lambda conn: self._claim_sql(conn, queue, token))
        for message_id in poisoned:
            _log.warning("queue.dead_lettered", queue=queue, message_id=message_id, reason="limit")
        if claimed is None:
            return None
        seq, message_id, body, attempt = claimed
        delivery = EmbeddedDelivery(message_id, body, attempt, seq, token, self)
        # Registered here, in the claiming task, so `close` always sees it.
        self._held[token] = delivery
        return delivery

    def _claim_sql(
        self, conn: sqlite3.Connection, queue: str, token: str
    ) -> tuple[tuple[int, str, bytes, int] | None, list[str]]:
        poisoned: list[str] = []
        now = time.time()
        # Idle consumers look without the write lock (WAL readers block nobody).
        ready = "SELECT 1 FROM messages WHERE queue = ? AND visible_at <= ? LIMIT 1"
        if conn.execute(ready, (queue, now)).fetchone() is None:
            return None, poisoned
        with _immediate(conn):
            while True:
                row = conn.execute(
                    "SELECT seq, message_id, body, deliveries FROM messages"
                    " WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT 1",
                    (queue, now),
                ).fetchone()
                if row is None:
                    return None, poisoned
                seq, message_id, body, deliveries = row
                if deliveries < self._max_deliveries:
                    break
                reason = f"delivered {deliveries} times without an ack"
                reason += f" (limit {self._max_deliveries})"
                _move_to_dead(conn, seq, queue, message_id, reason)
                poisoned.append(message_id)
            conn.execute(
                "UPDATE messages SET deliveries = deliveries + 1, visible_at = ?, lease_token = ?"
                " WHERE seq = ?",
                (now + self._lease_seconds, token, seq),
            )
        return (seq, message_id, bytes(body), deliveries + 1), poisoned

    async def _settle(
        self,
        delivery: EmbeddedDelivery,
        how: Settlement,
        *,
        delay_seconds: float = 0.0,
        reason: str = "",
    ) -> None:
        # Forgotten first: even if the statement fails, the lease lapses and the message returns.
        if self._held.pop(delivery.token, None) is None:
            _log.debug("queue.already_settled", message_id=delivery.message_id, how=how)
            return

        def settle(conn: sqlite3.Connection) -> bool:
            key = (delivery.seq, delivery.token)
            if how == "ack":
                sql = "DELETE FROM messages WHERE seq = ? AND lease_token = ?"
                return conn.execute(sql, key).rowcount > 0
            if how == "retry":
                sql = "UPDATE messages SET visible_at = ?, lease_token = NULL"
                sql += " WHERE seq = ? AND lease_token = ?"
                return conn.execute(sql, (time.time() + max(0.0, delay_seconds), *key)).rowcount > 0
            with _immediate(conn):
                row = conn.execute(
                    "SELECT queue FROM messages WHERE seq = ? AND lease_token = ?", key
                ).fetchone()
                if row is not None:
                    _move_to_dead(conn, delivery.seq, row[0], delivery.message_id, reason)
                return row is not None

        if not await self._call(settle):
            _log.warning("queue.lease_lost", message_id=delivery.message_id, how=how)

    @staticmethod
    def _release(conn: sqlite3.Connection, held: list[EmbeddedDelivery]) -> None:
        conn.executemany(
            "UPDATE messages SET visible_at = ?, lease_token = NULL"
            " WHERE seq = ? AND lease_token = ?",
            [(time.time(), d.seq, d.token) for d in held],
        )

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        interval = self._lease_seconds / 3
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            # A fixed cadence: a slow renewal must not push the next one later.
            due = max(due + interval, loop.time())
            await asyncio.sleep(due - loop.time())
            held = list(self._held.values())
            if not held:
                continue
            try:
                lost = await self._call(partial(self._renew_sql, held=held))
            except QueueError as exc:
                _log.warning("queue.lease_renewal_failed", error=str(exc))
                continue
            for delivery in lost:
                if self._held.pop(delivery.token, None) is not None:
                    _log.warning("queue.lease_lost", message_id=delivery.message_id)

    def _renew_sql(
        self, conn: sqlite3.Connection, held: list[EmbeddedDelivery]
    ) -> list[EmbeddedDelivery]:
        lost: list[EmbeddedDelivery] = []
        with _immediate(conn):
            visible_at = time.time() + self._lease_seconds
            for delivery in held:
                cursor = conn.execute(
                    "UPDATE messages SET visible_at = ? WHERE seq = ? AND lease_token = ?",
                    (visible_at, delivery.seq, delivery.token),
                )
                if cursor.rowcount == 0:
                    lost.append(delivery)
        return lost

    def _hand_back_orphan(self, claim: asyncio.Task[EmbeddedDelivery | None]) -> None:
        if claim.cancelled() or claim.exception() is not None:
            return
        delivery = claim.result()
        if delivery is not None:
            self._track(asyncio.create_task(delivery.retry(delay_seconds=0)))

    def _track(self, task: asyncio.Task[T]) -> asyncio.Task[T]:
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db.closed:
            raise QueueError("the queue is closed")
        try:
            return await self._db.run(fn)
        except sqlite3.Error as exc:
            raise QueueError(f"embedded queue {self._db.path}: {exc}") from exc
