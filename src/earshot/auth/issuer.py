"""Minting access tokens: the course's claims plus the registered ones, signed with the auth key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from earshot.auth.keys import SigningKey
from earshot.common.tokens import Claims


@dataclass(frozen=True)
class IssuedToken:
    """A signed token, its claims and its lifetime in seconds."""

    token: str
    claims: Claims
    expires_in: int


def _utcnow() -> datetime:
    return datetime.now(tz=UTC)


class TokenIssuer:
    """Signs access tokens for users; `clock` lets tests mint tokens that are already expired."""

    def __init__(
        self,
        key: SigningKey,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._ttl_seconds = ttl_seconds
        self._clock = clock

    def issue(self, *, user_id: str, email: str, is_admin: bool) -> IssuedToken:
        """A token for this user, valid for the configured lifetime from now."""
        now = self._clock().replace(microsecond=0)
        claims = Claims(
            sub=user_id,
            username=email,
            admin=is_admin,
            iss=self._issuer,
            aud=self._audience,
            iat=now,
            exp=now + timedelta(seconds=self._ttl_seconds),
            jti=str(uuid.uuid4()),
        )
        headers = {"kid": self._key.kid} if self._key.kid else None
        token = jwt.encode(
            claims.model_dump(),
            self._key.private_key,
            algorithm=self._key.algorithm,
            headers=headers,
        )
        return IssuedToken(token=token, claims=claims, expires_in=self._ttl_seconds)
