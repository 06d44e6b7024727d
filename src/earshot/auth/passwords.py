"""Password hashing with argon2id, off the event loop, with equal timing for unknown users."""

from __future__ import annotations

import asyncio
import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from earshot.auth.settings import AuthSettings

MAX_PASSWORD_CHARS = 1024  # longer adds nothing but hashing cost an attacker could exploit


class WeakPassword(ValueError):
    """A password refused by the policy; the message says what is expected."""


def check_password(password: str, *, min_length: int) -> str:
    """`password` when the policy accepts it; `WeakPassword` with a clear message otherwise."""
    if len(password) < min_length:
        raise WeakPassword(f"the password must be at least {min_length} characters long")
    if len(password) > MAX_PASSWORD_CHARS:
        raise WeakPassword(f"the password must be at most {MAX_PASSWORD_CHARS} characters long")
    return password


def generate_password() -> str:
    """A strong random password (24 URL-safe characters, 144 bits)."""
    return secrets.token_urlsafe(18)


class Passwords:
    """Hashes and verifies passwords in threads (argon2id is slow on purpose), a few at a time."""

    def __init__(self, hasher: PasswordHasher | None = None, *, max_concurrency: int = 2) -> None:
        self._hasher = hasher or PasswordHasher()
        # Each hash takes argon2's memory cost (64 MiB by default): a login storm must not
        # multiply that by the thread pool's size.
        self._slots = asyncio.Semaphore(max_concurrency)

    @functools.cached_property
    def _dummy_hash(self) -> str:
        # Verifying unknown users against this costs what a real verification costs, so response
        # time does not reveal which emails have accounts.
        return self._hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Passwords:
        """Hashing with the argon2id cost parameters from settings."""
        hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        passwords = cls(hasher, max_concurrency=settings.password_hash_concurrency)
        passwords.warm_up()
        return passwords

    def warm_up(self) -> None:
        """Compute the dummy hash now, so the first unknown-user login is not slower than others."""
        _ = self._dummy_hash

    async def hash(self, password: str) -> str:
        """The argon2id hash of `password` (`$argon2id$...`)."""
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether `password` matches; `stored_hash=None` (no such user) takes as long and fails."""
        async with self._slots:
            return await asyncio.to_thread(self._verify_sync, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(stored_hash)

    def _verify_sync(self, stored_hash: str | None, password: str) -> bool:
        try:
            matched = self._hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return matched and stored_hash is not None
