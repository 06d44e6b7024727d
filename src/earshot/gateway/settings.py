"""The gateway's settings: where it listens, its jobs database, auth, and upload limits."""

from __future__ import annotations

from pydantic import Field, model_validator

from earshot.common.tokens import TokenSettings

GIB = 1 << 30
MIB = 1 << 20


class GatewaySettings(TokenSettings):
    """Settings of the gateway (environment variables `EARSHOT_<FIELD>`)."""

    gateway_host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    gateway_port: int = Field(default=8080, ge=1, le=65535, description="Gateway HTTP port.")
    jobs_database_url: str = Field(
        default="",
        description="The jobs database. Empty: SQLite file DATA_DIR/jobs.db. "
        "`mysql+asyncmy://...` or `postgresql+asyncpg://...` otherwise.",
    )
    auth_url: str = Field(
        default="http://127.0.0.1:8081",
        description="Base URL of the auth service (login proxy and JWKS).",
    )
    jwks_cache_seconds: float = Field(
        default=300.0, gt=0, description="How long the gateway trusts a fetched JWKS."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="The gateway's address as users see it (download links in notifications).",
    )
    max_upload_bytes: int = Field(
        default=4 * GIB, gt=0, description="Largest accepted upload; bigger ones get 413."
    )
    upload_chunk_bytes: int = Field(
        default=1 * MIB,
        ge=4096,
        description="Uploads are written to, and downloads read from, the blob store in chunks "
        "of this size (bounds the memory one transfer holds).",
    )
    download_redirect: bool = Field(
        default=False,
        description="Answer audio downloads with a 307 redirect to a short-lived URL of the blob "
        "store (S3 presigned), so that the bytes bypass the gateway. Ignored by stores that "
        "cannot presign (the folder). Clients must be able to reach the store.",
    )
    download_redirect_seconds: int = Field(
        default=300,
        ge=1,
        le=7 * 24 * 3600,
        description="How long a download redirect URL stays valid (S3 allows up to 7 days).",
    )
    probe_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Longest time spent inspecting an uploaded file."
    )
    outbox_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the outbox relay looks for unpublished messages."
    )
    outbox_backoff_max_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between relay attempts while the broker is down.",
    )
    outbox_publish_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait for the broker to take one message; past it the message "
        "stays in the outbox for the relay and the upload still succeeds.",
    )
    outbox_retention_seconds: float = Field(
        default=86400.0, gt=0, description="Published outbox rows older than this are pruned."
    )
    orphan_input_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A stored video or audio file that belongs to no job (the gateway died "
        "mid-upload; a job was deleted while the store failed) is deleted once this old; checked "
        "at start-up and then every ORPHAN_SWEEP_SECONDS.",
    )
    orphan_sweep_seconds: float = Field(
        default=3600.0, gt=0, description="How often stored files are reconciled with jobs."
    )
    events_max_attempts: int = Field(
        default=10,
        ge=1,
        description="Deliveries of a job event that failed before it is dead-lettered.",
    )
    jobs_page_size_max: int = Field(
        default=100, ge=1, description="Largest `limit` accepted by GET /api/v1/jobs."
    )
    auth_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of calls from the gateway to auth."
    )
    db_retry_after_seconds: int = Field(
        default=5, ge=1, description="`Retry-After` sent with 503 when the database is unreachable."
    )

    @model_validator(mode="after")
    def _derive_gateway_urls(self) -> GatewaySettings:
        if not self.jobs_database_url:
            self.jobs_database_url = self.sqlite_url("jobs.db")
        self.auth_url = self.auth_url.rstrip("/")
        self.public_url = self.public_url.rstrip("/")
        return self
