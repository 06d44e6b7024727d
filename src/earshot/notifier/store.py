"""The record of notifications: what was sent, what is in flight, what failed for good."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.common.messages import JobFinished, utcnow
from earshot.notifier.models import (
    ERROR_MAX_CHARS,
    FAILED,
    FINAL_STATES,
    SENDING,
    SENT,
    Notification,
)


class ClaimConflict(Exception):
    """Another consumer recorded the same outcome at the same moment; try again shortly."""


class NotificationStore:
    """Reads and writes the `notifications` table; one short transaction per call."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, event_id: str) -> Notification | None:
        """The record of one job outcome, if any."""
        async with self._sessions() as session:
            return await session.get(Notification, event_id)

    async def claim(
        self, event: JobFinished, *, event_id: str, message_id: str
    ) -> Notification | None:
        """Record one more send attempt and return the record; None when already sent or failed."""
        now = utcnow()
        async with self._sessions() as session:
            record = await session.get(Notification, event_id)
            if record is not None and record.state in FINAL_STATES:
                return None
            if record is None:
                record = Notification(
                    event_id=event_id,
                    job_id=event.job_id,
                    recipient=event.username,
                    outcome=event.outcome,
                    state=SENDING,
                    message_id=message_id,
                    attempts=0,
                    created_at=now,
                )
                session.add(record)
            record.attempts += 1
            record.updated_at = now
            try:
                await session.commit()
            except IntegrityError as exc:
                raise ClaimConflict(event_id) from exc
            return record

    async def mark_sent(self, event_id: str) -> None:
        """The email left: never send it again."""
        now = utcnow()
        await self._update(event_id, state=SENT, sent_at=now, updated_at=now, last_error=None)

    async def mark_failed(self, event_id: str, *, error: str) -> None:
        """The email cannot be sent: stop trying, keep the reason."""
        await self._update(
            event_id, state=FAILED, updated_at=utcnow(), last_error=error[:ERROR_MAX_CHARS]
        )

    async def note_error(self, event_id: str, *, error: str) -> None:
        """A send failed but may succeed later: keep the reason, stay `sending`."""
        await self._update(event_id, updated_at=utcnow(), last_error=error[:ERROR_MAX_CHARS])

    async def count(self, *, state: str | None = None) -> int:
        """How many records there are (in `state`, when given)."""
        query = select(func.count()).select_from(Notification)
        if state is not None:
            query = query.where(Notification.state == state)
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def _update(self, event_id: str, **values: object) -> None:
        statement = update(Notification).where(Notification.event_id == event_id).values(**values)
        async with self._sessions() as session:
            await session.execute(statement)
            await session.commit()
