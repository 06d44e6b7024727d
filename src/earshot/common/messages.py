"""The queue contract: queue names and the versioned messages that cross them.

Flow: gateway --JobSubmitted--> `video` --> converter
  --JobStarted/JobProgressed/JobSucceeded/JobFailed--> `job-events` --> gateway (applies them)
  --JobFinished--> `mp3` --> notifier.
The course's names `video` and `mp3` are kept for the queues its users know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

JOBS_QUEUE = "video"
JOB_EVENTS_QUEUE = "job-events"
NOTIFICATIONS_QUEUE = "mp3"
ALL_QUEUES = (JOBS_QUEUE, JOB_EVENTS_QUEUE, NOTIFICATIONS_QUEUE)

AudioFormat = Literal["mp3", "m4a", "opus", "ogg", "flac", "wav"]
AUDIO_FORMATS: tuple[AudioFormat, ...] = ("mp3", "m4a", "opus", "ogg", "flac", "wav")
AUDIO_MEDIA_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "opus": "audio/ogg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "wav": "audio/wav",
}


def dead_letter_queue(queue: str) -> str:
    """The name of the queue where `queue`'s poison messages end."""
    return f"{queue}.dead"


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(tz=UTC)


class Message(BaseModel):
    """Base of every message: versioned, immutable, unknown fields ignored (forward compatible)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    v: int = 1
    job_id: str
    occurred_at: datetime = Field(default_factory=utcnow)

    def to_bytes(self) -> bytes:
        """Serialise for the wire."""
        return self.model_dump_json().encode()


class ConversionOptions(BaseModel):
    """What the user asked for: `bitrate` (CBR, e.g. `192k`) or `quality` (VBR), not both."""

    model_config = ConfigDict(frozen=True)

    format: AudioFormat = "mp3"
    bitrate: str | None = Field(default=None, pattern=r"^[1-9][0-9]{1,2}k$")
    quality: int | None = Field(default=None, ge=0, le=9)

    @property
    def asks_for_reencode(self) -> bool:
        """True when an option rules out copying an existing audio stream."""
        return self.bitrate is not None or self.quality is not None


class JobSubmitted(Message):
    """A job is durable in the gateway's database and waits for a converter."""

    type: Literal["job.submitted"] = "job.submitted"
    user_id: str
    username: str
    video_fid: str
    mp3_fid: str
    input_key: str
    output_key: str
    original_filename: str
    options: ConversionOptions = ConversionOptions()
    input_audio_codec: str | None = None
    input_duration_seconds: float | None = None


class JobStarted(Message):
    """A converter took the job (attempt counts from 1)."""

    type: Literal["job.started"] = "job.started"
    attempt: int = 1


class JobProgressed(Message):
    """Conversion progress, 0 to 100."""

    type: Literal["job.progressed"] = "job.progressed"
    percent: float = Field(ge=0, le=100)


class JobSucceeded(Message):
    """The output is stored under `output_key`."""

    type: Literal["job.succeeded"] = "job.succeeded"
    output_key: str
    output_bytes: int
    output_duration_seconds: float | None = None


class JobFailed(Message):
    """The job cannot succeed; `reason` is for humans."""

    type: Literal["job.failed"] = "job.failed"
    reason: str
    permanent: bool = True


JobEvent = Annotated[
    JobStarted | JobProgressed | JobSucceeded | JobFailed, Field(discriminator="type")
]
JOB_EVENT_ADAPTER: TypeAdapter[JobEvent] = TypeAdapter(JobEvent)


class JobFinished(Message):
    """The gateway recorded a final outcome; the notifier tells the user once.

    Carries the course's `video_fid`, `mp3_fid` and `username` so course-era consumers keep working.
    """

    type: Literal["job.finished"] = "job.finished"
    outcome: Literal["succeeded", "failed"]
    user_id: str
    username: str
    video_fid: str
    mp3_fid: str | None
    original_filename: str
    download_url: str | None = None
    error: str | None = None
