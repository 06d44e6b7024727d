"""The notifier's settings: its database, how mail leaves, and how failed sends are retried."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from earshot.common.settings import CommonSettings


class NotifierSettings(CommonSettings):
    """Settings of the notifier worker (environment variables `EARSHOT_<FIELD>`)."""

    notifier_database_url: str = Field(
        default="",
        description="The notifier's record of sent emails. Empty: SQLite file "
        "DATA_DIR/notifier.db. `mysql+asyncmy://...` or `postgresql+asyncpg://...` otherwise.",
    )
    smtp_url: str = Field(
        default="",
        description="Outgoing mail. Empty: `.eml` files in DATA_DIR/outbox. "
        "`smtp://user:pass@host:587?starttls=1&timeout=10` or `smtps://user:pass@host:465`.",
    )
    mail_from: str = Field(
        default="earshot <no-reply@earshot.local>",
        description="The From address of notification emails.",
    )
    notifier_max_attempts: int = Field(
        default=8,
        ge=1,
        description="Sends of one notification that failed transiently (SMTP down, 4xx) before it "
        "is recorded as failed.",
    )
    notifier_claim_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="While one notifier sends an email, others handed the same outcome wait this "
        "long before they may try (a notifier that died mid-send is taken over after it).",
    )
    notifier_retry_backoff_base_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Delay before the first retry of a failed send; doubles on each attempt.",
    )
    notifier_retry_backoff_max_seconds: float = Field(
        default=600.0, gt=0, description="Upper bound of the delay between two send retries."
    )
    notifier_heartbeat_path: Path | None = Field(
        default=None,
        description="File the notifier touches while its loop is alive (liveness probe). "
        "Empty: DATA_DIR/run/notifier.heartbeat.",
    )

    @field_validator("mail_from")
    @classmethod
    def _mail_from_is_an_address(cls, value: str) -> str:
        _name, address = parseaddr(value)
        if "@" not in address or any(c in value for c in "\r\n"):
            raise ValueError(f"must be an address like 'earshot <no-reply@example.com>': {value!r}")
        return value

    @model_validator(mode="after")
    def _derive_embedded_paths(self) -> NotifierSettings:
        if not self.notifier_database_url:
            self.notifier_database_url = self.sqlite_url("notifier.db")
        if self.notifier_heartbeat_path is None:
            self.notifier_heartbeat_path = self.data_dir / "run" / "notifier.heartbeat"
        return self

    @property
    def outbox_dir(self) -> Path:
        """Where the embedded mail adapter writes `.eml` files."""
        return self.data_dir / "outbox"

    @property
    def heartbeat_file(self) -> Path:
        """The resolved heartbeat file (never None once settings are built)."""
        assert self.notifier_heartbeat_path is not None
        return self.notifier_heartbeat_path
