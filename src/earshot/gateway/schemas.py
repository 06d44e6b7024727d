"""The `/api/v1` wire models: what clients read, documented in the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, cast

from pydantic import BaseModel, Field

from earshot.common.messages import AudioFormat
from earshot.gateway.models import SUCCEEDED, Job

JobState = Literal["queued", "processing", "succeeded", "failed"]


class InputFacts(BaseModel):
    """What the gateway learnt about the uploaded file."""

    filename: str = Field(description="The uploaded file's name.")
    bytes: int = Field(description="Size of the upload.")
    duration_seconds: float | None = Field(description="Media duration, when known.")
    container: str | None = Field(description="Container format as ffmpeg names it.")
    video_codec: str | None = Field(description="Codec of the first video stream, if any.")
    audio_codec: str | None = Field(description="Codec of the first audio stream.")


class OutputFacts(BaseModel):
    """The produced audio file (present once the job succeeded)."""

    bytes: int | None = Field(description="Size of the audio file.")
    duration_seconds: float | None = Field(description="Duration of the audio.")
    filename: str = Field(description="The name the download is offered under.")


class JobOut(BaseModel):
    """A conversion job."""

    id: str = Field(description="Job id.")
    fid: str = Field(description="Download id, for the course's `GET /download?fid=`.")
    state: JobState = Field(description="queued → processing → succeeded | failed.")
    progress: float = Field(ge=0, le=100, description="Percent done (0 to 100).")
    attempt: int = Field(description="Conversion attempts so far.")
    format: AudioFormat = Field(description="Output audio format.")
    bitrate: str | None = Field(description="Requested constant bitrate, e.g. `192k`.")
    quality: int | None = Field(description="Requested VBR quality (0 best to 9 smallest).")
    input: InputFacts
    output: OutputFacts | None = Field(description="Set once the job succeeded.")
    error: str | None = Field(description="Why the job failed, for humans.")
    download_url: str | None = Field(description="Where to fetch the audio once succeeded.")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job, *, filename: str) -> JobOut:
        """The wire view of a job row; `filename` is the name its download is offered under."""
        succeeded = job.state == SUCCEEDED
        return cls(
            id=job.id,
            fid=job.fid,
            state=cast(JobState, job.state),
            progress=round(job.progress, 1),
            attempt=job.attempt,
            format=cast(AudioFormat, job.format),
            bitrate=job.bitrate,
            quality=job.quality,
            input=InputFacts(
                filename=job.original_filename,
                bytes=job.input_bytes,
                duration_seconds=job.input_duration_seconds,
                container=job.input_container,
                video_codec=job.input_video_codec,
                audio_codec=job.input_audio_codec,
            ),
            output=OutputFacts(
                bytes=job.output_bytes,
                duration_seconds=job.output_duration_seconds,
                filename=filename,
            )
            if succeeded
            else None,
            error=job.error,
            download_url=f"/api/v1/jobs/{job.id}/audio" if succeeded else None,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobPage(BaseModel):
    """One page of the caller's jobs, newest first."""

    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")
    next: str | None = Field(description="URL of the next page, absent on the last page.")


class CourseUploadOut(BaseModel):
    """The course's `/upload` answer, with the ids earshot adds."""

    job_id: str
    fid: str
    status: JobState = "queued"
    message: str = "success!"


class TokenOut(BaseModel):
    """An access token, as the auth service issues it."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
