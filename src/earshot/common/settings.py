"""Typed settings shared by every service; each service extends `CommonSettings`.

Settings are built once at start-up (`XSettings()`) and passed down; nothing reads the
environment later.
Every outside dependency is chosen by one URL whose empty default means "the embedded adapter".
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "password", "admin", "test"}
)


class SettingsError(ValueError):
    """Settings that cannot be used (a placeholder secret in production, a malformed URL)."""


class CommonSettings(BaseSettings):
    """Settings every service reads."""

    model_config = SettingsConfigDict(env_prefix="EARSHOT_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = Field(
        default="development",
        description="`production` refuses generated keys and placeholder secrets.",
    )
    data_dir: Path = Field(default=Path("./var"), description="Where embedded adapters keep data.")
    broker_url: str = Field(
        default="",
        description="Message broker. Empty: the embedded durable queue in DATA_DIR/queue.db "
        "(also `sqlite:///PATH`). `amqp://user:pass@host:5672/vhost` for RabbitMQ.",
    )
    storage_url: str = Field(
        default="",
        description="Blob store. Empty: the folder DATA_DIR/blobs (also `file:///PATH`). "
        "`s3://BUCKET?endpoint_url=URL&region=REGION` for S3 (options: `prefix`, `part_size_mb`, "
        "`addressing_style`, `presign_endpoint_url`, `create_bucket=1` to create a missing "
        "bucket in development; credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).",
    )
    log_level: str = Field(default="info", description="debug, info, warning, error.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console on a terminal, JSON otherwise."
    )
    queue_poll_seconds: float = Field(
        default=0.2, gt=0, description="Embedded queue: how often an idle consumer looks for work."
    )
    queue_lease_seconds: float = Field(
        default=30.0,
        gt=1,
        description="Embedded queue: a message held by a consumer that stopped renewing its lease "
        "for this long (a crashed process) is delivered again.",
    )
    queue_max_deliveries: int = Field(
        default=10,
        ge=1,
        description="A message delivered this many times without an ack is dead-lettered (poison).",
    )

    @model_validator(mode="after")
    def _derive_embedded_urls(self) -> CommonSettings:
        data_dir = self.data_dir.expanduser().resolve()
        self.data_dir = data_dir
        if not self.broker_url:
            self.broker_url = f"sqlite:///{data_dir / 'queue.db'}"
        if not self.storage_url:
            self.storage_url = f"file://{data_dir / 'blobs'}"
        return self

    def sqlite_url(self, name: str) -> str:
        """The embedded database URL for one service's database file."""
        return f"sqlite+aiosqlite:///{self.data_dir / name}"

    def require_secret(self, name: str, value: str | None) -> None:
        """Refuse a missing or placeholder secret in production."""
        if self.env == "production" and (
            value is None or value.strip().lower() in PLACEHOLDER_SECRETS
        ):
            raise SettingsError(
                f"EARSHOT_{name.upper()} must be set to a real secret when EARSHOT_ENV=production"
            )
