"""The record of notifications: what was sent, what is in flight, what failed for good."""

from __future__ import annotations

from datetime import datetime, timedelta

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

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, claim_lease_seconds: float = 120.0
    ) -> None:
        self._sessions = sessions
        self._claim_lease_seconds = claim_lease_seconds

    async def get(self, event_id: str) -> Notification | None:
        """The record of one job outcome, if any."""
        async with self._sessions() as session:
            return await session.get(Notification, event_id)

    async def claim(
        self, event: JobFinished, *, event_id: str, message_id: str
    ) -> Notification | None:
        """Take the right to send (for `claim_lease_seconds`); None when already sent or failed.

        Raises `ClaimConflict` while another consumer holds the claim, so two notifiers handed
        the same outcome at once never both send it.
        """
        now = utcnow()
        async with self._sessions() as session:
            record = await session.get(Notification, event_id)
            if record is None:
                return await self._first_claim(session, event, event_id, message_id, now)
            if record.state in FINAL_STATES:
                return None
            if record.claimed_until is not None and record.claimed_until > now:
                raise ClaimConflict(event_id)
            seen = record.attempts
            result = await session.execute(
                update(Notification)
                .where(
                    Notification.event_id == event_id,
                    Notification.state == SENDING,
                    Notification.attempts == seen,
                )
                .values(attempts=seen + 1, claimed_until=self._lease_end(now), updated_at=now)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
            if not getattr(result, "rowcount", 0):
                raise ClaimConflict(event_id)
            return await session.get(Notification, event_id, populate_existing=True)

    async def _first_claim(
        self,
        session: AsyncSession,
        event: JobFinished,
        event_id: str,
        message_id: str,
        now: datetime,
    ) -> Notification:
        record = Notification(
            event_id=event_id,
            job_id=event.job_id,
            recipient=event.username,
            outcome=event.outcome,
            state=SENDING,
            message_id=message_id,
            attempts=1,
            created_at=now,
            updated_at=now,
            claimed_until=self._lease_end(now),
        )
        session.add(record)
        try:
            await session.commit()
        except IntegrityError as exc:
            raise ClaimConflict(event_id) from exc
        return record

    def _lease_end(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._claim_lease_seconds)

    async def mark_sent(self, event_id: str) -> None:
        """The email left: never send it again."""
        now = utcnow()
        await self._update(
            event_id, state=SENT, sent_at=now, updated_at=now, last_error=None, claimed_until=None
        )

    async def mark_failed(self, event_id: str, *, error: str) -> None:
        """The email cannot be sent: stop trying, keep the reason."""
        await self._update(
            event_id,
            state=FAILED,
            updated_at=utcnow(),
            last_error=error[:ERROR_MAX_CHARS],
            claimed_until=None,
        )

    async def note_error(self, event_id: str, *, error: str) -> None:
        """A send failed but may succeed later: keep the reason, release the claim."""
        await self._update(
            event_id, updated_at=utcnow(), last_error=error[:ERROR_MAX_CHARS], claimed_until=None
        )

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
