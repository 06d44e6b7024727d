"""Access-token verification shared by auth (`/validate`) and the gateway (every request).

Tokens are JWTs signed by auth: EdDSA or RS256 with a `kid` (public keys published as a JWKS), or
HS256 with a secret shared through settings or, in development, through a file in DATA_DIR/keys.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import jwt
import structlog
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictStr,
    ValidationError,
    field_serializer,
)

from earshot.common.settings import CommonSettings, SettingsError

JwtAlgorithm = Literal["EdDSA", "RS256", "HS256"]


class TokenSettings(CommonSettings):
    """The token settings auth (which signs) and the gateway (which verifies) must agree on."""

    jwt_algorithm: JwtAlgorithm = Field(
        default="EdDSA",
        description="Token signing: `EdDSA` (Ed25519) or `RS256` with a published JWKS that the "
        "gateway verifies locally, or the course's symmetric `HS256` with EARSHOT_JWT_SECRET.",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 only: the secret auth and the gateway share (at least 32 bytes). Empty: "
        "in development generated once into DATA_DIR/keys; production refuses to start.",
    )
    jwt_issuer: str = Field(default="earshot", description="The tokens' `iss` claim.")
    jwt_audience: str = Field(default="earshot", description="The tokens' `aud` claim.")


REQUIRED_CLAIMS = ("sub", "username", "admin", "iss", "aud", "iat", "exp", "jti")
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash
MAX_TOKEN_CHARS = 8192  # far above a real token; parsing megabytes of junk is wasted work
HS256_SECRET_FILE = "jwt-hs256.secret"  # noqa: S105 (a file name, not a secret)

log = structlog.get_logger()


class TokenError(Exception):
    """A token that must be refused; the message says why in a few words."""


class KeySetUnavailable(TokenError):
    """The issuer's public keys could not be fetched, so no token can be checked right now."""


class Claims(BaseModel):
    """The claims of an earshot access token (the course's four plus the registered ones)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sub: StrictStr
    username: StrictStr
    admin: StrictBool
    iss: StrictStr
    aud: StrictStr
    iat: datetime
    exp: datetime
    jti: StrictStr

    @field_serializer("iat", "exp")
    def _epoch_seconds(self, value: datetime) -> int:
        # JWTs carry NumericDate (seconds since the epoch), so dumps round-trip to a payload
        return int(value.timestamp())

    @property
    def user_id(self) -> str:
        """The user's id (`sub`)."""
        return self.sub

    @property
    def email(self) -> str:
        """The user's email (the course's `username`)."""
        return self.username


class TokenVerifier(Protocol):
    """Checks an access token and returns its claims, or raises `TokenError`."""

    async def verify(self, token: str) -> Claims:
        """The token's claims when it is valid; `TokenError` otherwise."""
        ...


def unverified_header(token: str, *, algorithm: str) -> dict[str, Any]:
    """The token's header, refusing junk and any algorithm but `algorithm` (`none` included)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("token is malformed")
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise TokenError("token is malformed") from exc
    if header.get("alg") != algorithm:
        raise TokenError("token algorithm is not allowed")
    return header


def decode_claims(
    token: str, key: Any, *, algorithm: str, issuer: str, audience: str, leeway_seconds: float = 0
) -> Claims:
    """The claims, once signature, algorithm, expiry, issuer, audience and presence are checked."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=leeway_seconds,
            options={
                "require": list(REQUIRED_CLAIMS),
                "strict_aud": True,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token has expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("token signature is invalid") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise TokenError("token algorithm is not allowed") from exc
    except (jwt.InvalidAudienceError, jwt.InvalidIssuerError, jwt.MissingRequiredClaimError) as exc:
        raise TokenError(str(exc)) from exc
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise TokenError("token is malformed") from exc
    try:
        return Claims.model_validate(payload)
    except ValidationError as exc:
        raise TokenError("token claims are malformed") from exc


class StaticKeyVerifier:
    """Verifies tokens with one known key: a public key (EdDSA, RS256) or the HS256 secret."""

    def __init__(self, key: Any, *, algorithm: JwtAlgorithm, issuer: str, audience: str) -> None:
        self._key = key
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience

    async def verify(self, token: str) -> Claims:
        """The token's claims when it is valid; `TokenError` otherwise."""
        unverified_header(token, algorithm=self._algorithm)
        return decode_claims(
            token,
            self._key,
            algorithm=self._algorithm,
            issuer=self._issuer,
            audience=self._audience,
        )


class JwksVerifier:
    """Verifies tokens locally with public keys fetched from the issuer's JWKS and cached.

    The JWKS is fetched again when the cache is older than `cache_seconds`, or when a token names
    an unknown `kid` (key rotation), but then at most once per `min_refresh_seconds`, so tokens
    with junk kids cannot turn into a request flood against auth.
    """

    def __init__(
        self,
        jwks_url: str,
        http_client: httpx.AsyncClient,
        *,
        algorithm: JwtAlgorithm,
        issuer: str,
        audience: str,
        cache_seconds: float = 300.0,
        min_refresh_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if algorithm == "HS256":
            raise ValueError(
                "HS256 tokens have no public key: use StaticKeyVerifier with the secret"
            )
        self._url = jwks_url
        self._http = http_client
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._cache_seconds = cache_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> Claims:
        """The token's claims when it is valid; `TokenError` otherwise."""
        header = unverified_header(token, algorithm=self._algorithm)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise TokenError("token has no key id")
        key = await self._key_for(kid)
        return decode_claims(
            token, key, algorithm=self._algorithm, issuer=self._issuer, audience=self._audience
        )

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        async with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._cache_seconds
            if stale or kid not in self._keys:
                await self._refresh(now)
            key = self._keys.get(kid)
        if key is None:
            raise TokenError("token was signed by an unknown key")
        return key

    async def _refresh(self, now: float) -> None:
        last = self._attempted_at
        if last is not None and now - last < self._min_refresh_seconds:
            if self._fetched_at is None:
                raise KeySetUnavailable("the signing keys are not available yet")
            return
        self._attempted_at = now
        try:
            response = await self._http.get(self._url)
            response.raise_for_status()
            self._keys = self._parse(response.json())
            self._fetched_at = now
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("jwks_fetch_failed", url=self._url, error=str(exc))
            if self._fetched_at is None:
                raise KeySetUnavailable(f"cannot fetch the signing keys: {exc}") from exc

    def _parse(self, document: Any) -> dict[str, jwt.PyJWK]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("the JWKS document has no `keys` list")
        if not document["keys"]:
            return {}
        try:
            key_set = jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWTError as exc:
            raise ValueError(f"the JWKS holds no usable key: {exc}") from exc
        return {
            key.key_id: key
            for key in key_set
            if key.key_id and key.algorithm_name == self._algorithm
        }


def read_or_create_private_file(path: Path, create: Callable[[], bytes]) -> bytes:
    """The content of `path`; when missing, `create()` is written there first with mode 0600.

    Creation is atomic (a complete temp file hard-linked into place), so processes starting together
    agree on one content instead of each keeping its own.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(create())
            temp.flush()
            os.fsync(temp.fileno())
        os.link(temp_name, path)
    except FileExistsError:
        pass  # another process won the race; its content is the one everybody uses
    finally:
        os.unlink(temp_name)
    return path.read_bytes()


def check_shared_secret(secret: str) -> str:
    """`secret` when it is long enough for HS256; a clear `SettingsError` otherwise."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"EARSHOT_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes for HS256 "
            "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return secret


def shared_secret(settings: CommonSettings, configured: str | None) -> str:
    """The HS256 secret: `configured`, or in development one generated once into DATA_DIR/keys."""
    settings.require_secret("jwt_secret", configured)
    if configured:
        return check_shared_secret(configured)
    path = settings.data_dir / "keys" / HS256_SECRET_FILE
    content = read_or_create_private_file(path, lambda: secrets.token_urlsafe(48).encode())
    return check_shared_secret(content.decode().strip())
