"""The notifier's database: one row per job outcome it was asked to announce."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from earshot.common.db import UtcDateTime, service_metadata

SENDING: Final = "sending"
SENT: Final = "sent"
FAILED: Final = "failed"
NOTIFICATION_STATES: Final = (SENDING, SENT, FAILED)
FINAL_STATES: Final = (SENT, FAILED)
ERROR_MAX_CHARS: Final = 1000


class Base(DeclarativeBase):
    """Declarative base of the notifier's tables."""

    metadata = service_metadata()


class Notification(Base):
    """One email about one job outcome; `event_id` (`<job_id>:<outcome>`) makes it unique.

    `sending` means not yet known to be delivered (in flight, or waiting for a retry); `sent` and
    `failed` are final, and a redelivered message finding them sends nothing.
    """

    __tablename__ = "notifications"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    outcome: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # While in the future, one consumer is sending this email; nobody else may claim it.
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
