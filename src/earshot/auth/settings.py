"""Auth settings: where it listens, its database, token signing, the admin seed, login limits."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from earshot.common.tokens import TokenSettings


class AuthSettings(TokenSettings):
    """Settings of the auth service (environment variables `EARSHOT_<FIELD>`)."""

    auth_host: str = Field(default="127.0.0.1", description="Address the auth service listens on.")
    auth_port: int = Field(default=8081, ge=1, le=65535, description="Port of the auth service.")
    auth_database_url: str = Field(
        default="",
        description="Users database. Empty: SQLite in DATA_DIR/auth.db. "
        "`mysql+asyncmy://...` or `postgresql+asyncpg://...` for a server.",
    )
    jwt_private_key: SecretStr | None = Field(
        default=None,
        description="PEM private key for EdDSA/RS256. Empty (with no key file): in development a "
        "key is generated once into DATA_DIR/keys; production refuses to start.",
    )
    jwt_private_key_file: Path | None = Field(
        default=None,
        description="Path of a PEM private key file, instead of EARSHOT_JWT_PRIVATE_KEY.",
    )
    access_token_ttl_seconds: int = Field(
        default=86400, gt=0, description="Lifetime of an access token (the course's one day)."
    )
    admin_email: str = Field(
        default="admin@earshot.local",
        description="Email of the admin user created when the users table is empty.",
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description="Password of that admin. Empty: a strong one is generated and printed once.",
    )
    password_min_length: int = Field(
        default=8, ge=1, description="Shortest password accepted for a new user."
    )
    argon2_time_cost: int = Field(default=3, ge=1, description="argon2id iterations per hash.")
    argon2_memory_kib: int = Field(
        default=65536, ge=64, description="argon2id memory per hash, in KiB (64 MiB by default)."
    )
    argon2_parallelism: int = Field(default=4, ge=1, description="argon2id lanes per hash.")
    password_hash_concurrency: int = Field(
        default=2,
        ge=1,
        description="Password hashes computed at once; bounds memory to this times the argon2id "
        "memory under a login storm.",
    )
    login_max_failures_per_account: int = Field(
        default=10,
        ge=1,
        description="Failed logins allowed for one account within the window before 429.",
    )
    login_max_failures_per_client: int = Field(
        default=30,
        ge=1,
        description="Failed logins allowed from one client address within the window before 429.",
    )
    login_failure_window_seconds: float = Field(
        default=300.0, gt=0, description="Sliding window over which failed logins are counted."
    )
    auth_trusted_proxies: list[str] = Field(
        default=["127.0.0.1", "::1"],
        description="Peers (addresses or CIDR networks, JSON list) whose X-Forwarded-For is "
        "believed when finding the client of a login; loopback by default, as the gateway "
        "proxies logins.",
    )

    @field_validator("auth_trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry.strip(), strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _derive_database_url(self) -> AuthSettings:
        if not self.auth_database_url:
            self.auth_database_url = self.sqlite_url("auth.db")
        return self
