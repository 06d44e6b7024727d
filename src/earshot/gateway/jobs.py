"""The jobs repository: create a job with its outbox message; find, list, delete a user's jobs."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.common.messages import JOBS_QUEUE, ConversionOptions, JobSubmitted, utcnow
from earshot.gateway import outbox
from earshot.gateway.models import QUEUED, Job, OutboxMessage
from earshot.gateway.probe import MediaFacts


class InvalidCursor(ValueError):
    """A pagination cursor this gateway did not produce."""


@dataclass(frozen=True, slots=True)
class Owner:
    """The user a job belongs to."""

    user_id: str
    username: str


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: just after this (created_at, id) in newest-first order."""

    created_at: datetime
    job_id: str

    def encode(self) -> str:
        """An opaque URL-safe token."""
        raw = f"{self.created_at.isoformat()}|{self.job_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a token made by `encode`."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            stamp, job_id = raw.split("|", 1)
            created_at = datetime.fromisoformat(stamp)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise InvalidCursor("invalid cursor") from exc
        if created_at.tzinfo is None:
            raise InvalidCursor("invalid cursor")
        return cls(created_at=created_at, job_id=job_id)


def submitted_message_id(job_id: str) -> str:
    """The outbox/queue message id of a job's `JobSubmitted`."""
    return f"{job_id}:submitted"


def new_job(
    *,
    job_id: str,
    fid: str,
    owner: Owner,
    original_filename: str,
    options: ConversionOptions,
    facts: MediaFacts,
    input_bytes: int,
) -> Job:
    """A queued job row for a stored, probed upload."""
    now = utcnow()
    return Job(
        id=job_id,
        user_id=owner.user_id,
        username=owner.username,
        state=QUEUED,
        progress=0.0,
        attempt=0,
        original_filename=original_filename,
        input_key=f"videos/{job_id}",
        fid=fid,
        output_key=f"audio/{fid}.{options.format}",
        format=options.format,
        bitrate=options.bitrate,
        quality=options.quality,
        input_bytes=input_bytes,
        input_duration_seconds=facts.duration_seconds,
        input_container=facts.container,
        input_video_codec=facts.video_codec,
        input_audio_codec=facts.audio_codec,
        created_at=now,
        updated_at=now,
    )


def submitted_message(job: Job) -> JobSubmitted:
    """The message that asks a converter to process `job`."""
    return JobSubmitted(
        job_id=job.id,
        user_id=job.user_id,
        username=job.username,
        video_fid=job.id,
        mp3_fid=job.fid,
        input_key=job.input_key,
        output_key=job.output_key,
        original_filename=job.original_filename,
        options=ConversionOptions.model_validate(
            {"format": job.format, "bitrate": job.bitrate, "quality": job.quality}
        ),
        input_audio_codec=job.input_audio_codec,
        input_duration_seconds=job.input_duration_seconds,
    )


async def create_job(sessions: async_sessionmaker[AsyncSession], job: Job) -> OutboxMessage:
    """Insert the job and its `JobSubmitted` outbox row in one transaction."""
    async with sessions() as session, session.begin():
        session.add(job)
        return outbox.stage(
            session,
            queue=JOBS_QUEUE,
            message_id=submitted_message_id(job.id),
            body=submitted_message(job).to_bytes(),
        )


async def get_job(
    sessions: async_sessionmaker[AsyncSession], job_id: str, *, user_id: str
) -> Job | None:
    """The user's job, None when absent or someone else's."""
    async with sessions() as session:
        job = await session.get(Job, job_id)
    return job if job is not None and job.user_id == user_id else None


async def get_job_by_fid(
    sessions: async_sessionmaker[AsyncSession], fid: str, *, user_id: str
) -> Job | None:
    """The user's job with this download id, None when absent or someone else's."""
    async with sessions() as session:
        job = await session.scalar(select(Job).where(Job.fid == fid))
    return job if job is not None and job.user_id == user_id else None


async def list_jobs(
    sessions: async_sessionmaker[AsyncSession],
    *,
    user_id: str,
    limit: int,
    after: Cursor | None = None,
) -> tuple[list[Job], Cursor | None]:
    """One page of the user's jobs, newest first, and the cursor of the next page (if any)."""
    query = select(Job).where(Job.user_id == user_id)
    if after is not None:
        query = query.where(
            or_(
                Job.created_at < after.created_at,
                and_(Job.created_at == after.created_at, Job.id < after.job_id),
            )
        )
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    async with sessions() as session:
        jobs = list(await session.scalars(query))
    if len(jobs) <= limit:
        return jobs, None
    last = jobs[limit - 1]
    return jobs[:limit], Cursor(created_at=last.created_at, job_id=last.id)


async def delete_job(
    sessions: async_sessionmaker[AsyncSession], job_id: str, *, user_id: str
) -> Job | None:
    """Remove the user's job (and its unpublished submission); the deleted row, or None."""
    async with sessions() as session, session.begin():
        job = await session.get(Job, job_id)
        if job is None or job.user_id != user_id:
            return None
        await session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.message_id == submitted_message_id(job_id),
                OutboxMessage.published_at.is_(None),
            )
        )
        await session.delete(job)
    return job
