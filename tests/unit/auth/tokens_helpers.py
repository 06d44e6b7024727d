"""Token forging helpers for the auth tests: expired, tampered, `alg: none`, other keys."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from earshot.auth.issuer import TokenIssuer
from earshot.auth.keys import SigningKey
from earshot.auth.settings import AuthSettings


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def payload_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def issuer_for(
    key: SigningKey,
    settings: AuthSettings,
    *,
    issued_ago: timedelta = timedelta(0),
    **overrides: Any,
) -> TokenIssuer:
    """An issuer like the app's, whose clock runs `issued_ago` behind."""
    options: dict[str, Any] = {
        "issuer": settings.jwt_issuer,
        "audience": settings.jwt_audience,
        "ttl_seconds": settings.access_token_ttl_seconds,
        **overrides,
    }
    return TokenIssuer(key, clock=lambda: datetime.now(tz=UTC) - issued_ago, **options)


def mint(key: SigningKey, settings: AuthSettings, **kwargs: Any) -> str:
    """A token for a made-up user."""
    issuer = issuer_for(key, settings, **kwargs)
    return issuer.issue(user_id="u-1", email="someone@example.com", is_admin=False).token


def tampered(token: str, **changes: Any) -> str:
    """The token with claims changed and the original signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url_json({**payload_of(token), **changes})}.{signature}"


def unsigned(token: str) -> str:
    """The token re-headed as `alg: none` with no signature."""
    header = {**header_of(token), "alg": "none"}
    return f"{b64url_json(header)}.{b64url_json(payload_of(token))}."
