"""The jobs database: one row per job, and the outbox of messages waiting to be published."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from earshot.common.db import UtcDateTime, service_metadata

QUEUED: Final = "queued"
PROCESSING: Final = "processing"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
JOB_STATES: Final = (QUEUED, PROCESSING, SUCCEEDED, FAILED)
FINAL_STATES: Final = (SUCCEEDED, FAILED)
ERROR_MAX_CHARS: Final = 2000
# MySQL's FLOAT is single precision: 33.3 would come back as 33.29999923706055, and a duplicate
# progress event would then look like progress. DOUBLE matches SQLite's REAL and PostgreSQL's FLOAT.
DOUBLE: Final = Float().with_variant(mysql.DOUBLE(asdecimal=False), "mysql", "mariadb")
# MySQL's BLOB stops at 64 KiB; MEDIUMBLOB (16 MiB) is the size the other engines allow anyway.
MESSAGE_BODY: Final = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")


class Base(DeclarativeBase):
    """Declarative base of the gateway's tables."""

    metadata = service_metadata()


class Job(Base):
    """One conversion requested by one user; the converter's events move its `state` forward."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_user_created", "user_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    progress: Mapped[float] = mapped_column(DOUBLE, default=0.0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    original_filename: Mapped[str] = mapped_column(String(255))
    input_key: Mapped[str] = mapped_column(String(255))
    fid: Mapped[str] = mapped_column(String(64), unique=True)
    output_key: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))
    bitrate: Mapped[str | None] = mapped_column(String(8))
    quality: Mapped[int | None] = mapped_column(Integer)
    input_bytes: Mapped[int] = mapped_column(BigInteger)
    input_duration_seconds: Mapped[float | None] = mapped_column(DOUBLE)
    input_container: Mapped[str | None] = mapped_column(String(64))
    input_video_codec: Mapped[str | None] = mapped_column(String(32))
    input_audio_codec: Mapped[str | None] = mapped_column(String(32))
    output_bytes: Mapped[int | None] = mapped_column(BigInteger)
    output_duration_seconds: Mapped[float | None] = mapped_column(DOUBLE)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OutboxMessage(Base):
    """A message committed with the change that caused it, published by the relay afterwards."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    queue: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(128), unique=True)
    body: Mapped[bytes] = mapped_column(MESSAGE_BODY)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
