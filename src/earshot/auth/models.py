"""The users table, mapped for SQLite, MariaDB/MySQL and PostgreSQL alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Boolean, String
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from earshot.common.db import UtcDateTime, migrate, service_metadata

MIGRATIONS = "earshot.auth:migrations"
EMAIL_MAX_LENGTH = 320  # RFC 3696 errata: 64 local + @ + 255 domain


class Base(DeclarativeBase):
    """Declarative base of the auth database."""

    metadata = service_metadata()


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(tz=UTC)


class User(Base):
    """A person who can sign in; the email is stored normalised (trimmed, lower case)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)


async def apply_migrations(engine: AsyncEngine) -> None:
    """Bring the auth database to the latest schema (idempotent)."""
    await migrate(engine, MIGRATIONS)
