"""Token verification shared by auth and the gateway: JWKS caching and rotation, every refusal."""

from __future__ import annotations

import stat
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from earshot.auth.app import create_app
from earshot.auth.issuer import TokenIssuer
from earshot.auth.keys import SigningKey, from_private_key, generate_private_key
from earshot.auth.models import apply_migrations
from earshot.auth.settings import AuthSettings
from earshot.common.db import create_engine
from earshot.common.settings import CommonSettings, SettingsError
from earshot.common.tokens import (
    Claims,
    JwksVerifier,
    KeySetUnavailable,
    StaticKeyVerifier,
    TokenError,
    read_or_create_private_file,
    shared_secret,
)

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
JWKS_URL = "http://auth/.well-known/jwks.json"


def _settings(tmp_path: Path, **overrides: Any) -> AuthSettings:
    cheap: dict[str, Any] = {
        "argon2_time_cost": 1,
        "argon2_memory_kib": 256,
        "argon2_parallelism": 1,
    }
    return AuthSettings(_env_file=None, data_dir=tmp_path, **cheap, **overrides)


def _new_key() -> SigningKey:
    return from_private_key(generate_private_key("EdDSA"), algorithm="EdDSA")


def _token(key: SigningKey, *, ago: timedelta = timedelta(0), **overrides: Any) -> str:
    options: dict[str, Any] = {"issuer": "earshot", "audience": "earshot", "ttl_seconds": 3600}
    issuer = TokenIssuer(key, clock=lambda: datetime.now(tz=UTC) - ago, **{**options, **overrides})
    return issuer.issue(user_id="u-1", email="ada@example.com", is_admin=True).token


class Switchable:
    """An ASGI app that forwards to whichever app is current (auth restarting with a new key)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Auth:
    """An auth app on a real SQLite file, its JWKS served through ASGITransport, fetches counted."""

    def __init__(self, settings: AuthSettings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.key = _new_key()
        self.switch = Switchable(self.build(self.key))
        self.fetches = 0
        self.clock = Clock()

    def build(self, key: SigningKey) -> FastAPI:
        return create_app(self.settings, engine=self.engine, signing_key=key)

    def rotate(self) -> SigningKey:
        self.key = _new_key()
        self.switch.app = self.build(self.key)
        return self.key

    async def count(self, request: httpx.Request) -> None:
        self.fetches += 1

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.switch), event_hooks={"request": [self.count]}
        )

    def verifier(self, http: httpx.AsyncClient, **overrides: Any) -> JwksVerifier:
        options: dict[str, Any] = {
            "algorithm": "EdDSA",
            "issuer": "earshot",
            "audience": "earshot",
            "cache_seconds": 300,
            "min_refresh_seconds": 5,
            "clock": self.clock,
            **overrides,
        }
        return JwksVerifier(JWKS_URL, http, **options)


@pytest.fixture
async def auth(tmp_path: Path) -> AsyncIterator[Auth]:
    settings = _settings(tmp_path)
    engine = create_engine(settings.auth_database_url)
    await apply_migrations(engine)
    yield Auth(settings, engine)
    await engine.dispose()


@pytest.fixture
async def http(auth: Auth) -> AsyncIterator[httpx.AsyncClient]:
    async with auth.client() as client:
        yield client


async def test_tokens_are_verified_locally_with_one_jwks_fetch(
    auth: Auth, http: httpx.AsyncClient
) -> None:
    verifier = auth.verifier(http)
    for _ in range(5):
        claims = await verifier.verify(_token(auth.key))
        assert claims.username == claims.email == "ada@example.com"
        assert claims.user_id == "u-1" and claims.admin is True
    assert auth.fetches == 1


async def test_a_rotated_key_is_picked_up_by_refetching_on_its_new_kid(
    auth: Auth, http: httpx.AsyncClient
) -> None:
    # given a verifier that cached the first key
    verifier = auth.verifier(http)
    await verifier.verify(_token(auth.key))
    # when auth restarts with a new key and signs a token with it
    new_key = auth.rotate()
    auth.clock.now += 60
    claims = await verifier.verify(_token(new_key))
    # then the verifier fetched the JWKS again, once, and accepts the token
    assert claims.sub == "u-1"
    assert auth.fetches == 2


async def test_unknown_kids_refetch_at_most_once_per_interval(
    auth: Auth, http: httpx.AsyncClient
) -> None:
    verifier = auth.verifier(http, min_refresh_seconds=5)
    await verifier.verify(_token(auth.key))
    junk = _token(_new_key())
    auth.clock.now += 10
    with pytest.raises(TokenError, match="unknown key"):
        await verifier.verify(junk)
    assert auth.fetches == 2
    for _ in range(20):
        auth.clock.now += 0.1
        with pytest.raises(TokenError, match="unknown key"):
            await verifier.verify(junk)
    assert auth.fetches == 2  # no flood against auth
    auth.clock.now += 5
    with pytest.raises(TokenError):
        await verifier.verify(junk)
    assert auth.fetches == 3
    await verifier.verify(_token(auth.key))  # known kids keep working from the cache
    assert auth.fetches == 3


async def test_the_cache_expires(auth: Auth, http: httpx.AsyncClient) -> None:
    verifier = auth.verifier(http, cache_seconds=30)
    await verifier.verify(_token(auth.key))
    auth.clock.now += 31
    await verifier.verify(_token(auth.key))
    assert auth.fetches == 2


def _hs256_with_public_key(key: SigningKey) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the public key's bytes."""
    public = key.verification_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    claims = jwt.decode(_token(key), options={"verify_signature": False})
    return jwt.encode(claims, public * 2, algorithm="HS256", headers={"kid": key.kid})


def _without(key: SigningKey, claim: str) -> str:
    claims = jwt.decode(_token(key), options={"verify_signature": False})
    del claims[claim]
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})


def _retyped(key: SigningKey, **changes: Any) -> str:
    claims = jwt.decode(_token(key), options={"verify_signature": False})
    return jwt.encode(
        {**claims, **changes}, key.private_key, algorithm="EdDSA", headers={"kid": key.kid}
    )


def _unsigned(key: SigningKey) -> str:
    payload = _token(key).split(".")[1]
    none_header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    return f"{none_header}.{payload}."


def _tampered(key: SigningKey) -> str:
    other = _token(key, ttl_seconds=999999)
    header, _, signature = _token(key).split(".")
    return f"{header}.{other.split('.')[1]}.{signature}"


FORGERIES: dict[str, Callable[[SigningKey], str]] = {
    "expired": lambda key: _token(key, ago=timedelta(hours=2)),
    "tampered": _tampered,
    "alg-none": _unsigned,
    "hs256-confusion": _hs256_with_public_key,
    "wrong-issuer": lambda key: _token(key, issuer="evil"),
    "wrong-audience": lambda key: _token(key, audience="other"),
    "missing-admin": lambda key: _without(key, "admin"),
    "missing-jti": lambda key: _without(key, "jti"),
    "missing-username": lambda key: _without(key, "username"),
    "admin-not-bool": lambda key: _retyped(key, admin="yes"),
    "no-kid": lambda key: jwt.encode(
        jwt.decode(_token(key), options={"verify_signature": False}),
        key.private_key,
        algorithm="EdDSA",
    ),
    "malformed": lambda key: "a.b.c",
    "garbage": lambda key: "%%%",
    "huge": lambda key: "x" * 100_000,
}


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
async def test_the_jwks_verifier_refuses_forgeries(
    auth: Auth, http: httpx.AsyncClient, forgery: Callable[[SigningKey], str]
) -> None:
    with pytest.raises(TokenError):
        await auth.verifier(http).verify(forgery(auth.key))


STATIC_FORGERIES = {name: forge for name, forge in FORGERIES.items() if name != "no-kid"}


@pytest.mark.parametrize("forgery", STATIC_FORGERIES.values(), ids=STATIC_FORGERIES.keys())
async def test_the_static_verifier_refuses_forgeries(
    auth: Auth, forgery: Callable[[SigningKey], str]
) -> None:
    verifier = auth.key.verifier(issuer="earshot", audience="earshot")
    with pytest.raises(TokenError):
        await verifier.verify(forgery(auth.key))


async def test_alg_none_is_refused_before_any_fetch(auth: Auth, http: httpx.AsyncClient) -> None:
    with pytest.raises(TokenError, match="algorithm is not allowed"):
        await auth.verifier(http).verify(_unsigned(auth.key))
    assert auth.fetches == 0


async def test_expired_tokens_say_so(auth: Auth, http: httpx.AsyncClient) -> None:
    with pytest.raises(TokenError, match="expired"):
        await auth.verifier(http).verify(_token(auth.key, ago=timedelta(hours=2)))


async def test_unreachable_keys_are_reported_as_unavailable(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as client:
        verifier = JwksVerifier(JWKS_URL, client, algorithm="EdDSA", issuer="e", audience="e")
        with pytest.raises(KeySetUnavailable, match="cannot fetch the signing keys"):
            await verifier.verify(_token(_new_key()))
        with pytest.raises(KeySetUnavailable):  # throttled: no second attempt right away
            await verifier.verify(_token(_new_key()))


async def test_cached_keys_outlive_a_failed_refresh(auth: Auth, http: httpx.AsyncClient) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"down"})

    verifier = auth.verifier(http, cache_seconds=30)
    await verifier.verify(_token(auth.key))
    auth.switch.app = broken
    auth.clock.now += 31
    assert (await verifier.verify(_token(auth.key))).sub == "u-1"
    assert auth.fetches == 2


async def test_hs256_is_not_for_the_jwks_verifier() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="StaticKeyVerifier"):
            JwksVerifier(JWKS_URL, client, algorithm="HS256", issuer="e", audience="e")


async def test_hs256_static_verifier(tmp_path: Path) -> None:
    secret = shared_secret(CommonSettings(_env_file=None, data_dir=tmp_path), None)
    key = SigningKey(algorithm="HS256", private_key=secret)
    verifier = StaticKeyVerifier(secret, algorithm="HS256", issuer="earshot", audience="earshot")
    assert (await verifier.verify(_token(key))).admin is True
    other = SigningKey(algorithm="HS256", private_key="another secret that is long enough!!")
    with pytest.raises(TokenError, match="signature"):
        await verifier.verify(_token(other))
    with pytest.raises(TokenError, match="algorithm"):
        await verifier.verify(_token(_new_key()))


def test_the_dev_shared_secret_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    settings = CommonSettings(_env_file=None, data_dir=tmp_path)
    first = shared_secret(settings, None)
    path = tmp_path / "keys" / "jwt-hs256.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert shared_secret(settings, None) == first
    assert len(first) >= 32
    configured = "a configured secret, long enough for HS256"
    assert shared_secret(settings, configured) == configured


@pytest.mark.parametrize(
    ("configured", "message"),
    [(None, "EARSHOT_JWT_SECRET must be set"), ("changeme", "EARSHOT_JWT_SECRET must be set")],
)
def test_production_refuses_a_missing_shared_secret(
    tmp_path: Path, configured: str | None, message: str
) -> None:
    settings = CommonSettings(_env_file=None, data_dir=tmp_path, env="production")
    with pytest.raises(SettingsError, match=message):
        shared_secret(settings, configured)


def test_short_shared_secrets_are_refused(tmp_path: Path) -> None:
    settings = CommonSettings(_env_file=None, data_dir=tmp_path)
    with pytest.raises(SettingsError, match="at least 32 bytes"):
        shared_secret(settings, "sarcasm")  # the course's secret


def test_concurrent_creators_agree_on_one_content(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "shared"
    results: list[bytes] = []
    counter = iter(range(1000))

    def create() -> bytes:
        return f"content-{next(counter)}".encode()

    threads = [
        threading.Thread(target=lambda: results.append(read_or_create_private_file(path, create)))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 16
    assert [p.name for p in path.parent.iterdir()] == ["shared"]  # no temp files left


def test_claims_dump_back_to_a_jwt_payload() -> None:
    payload = {
        "sub": "u-1",
        "username": "ada@example.com",
        "admin": False,
        "iss": "earshot",
        "aud": "earshot",
        "iat": 1_700_000_000,
        "exp": 1_700_086_400,
        "jti": "j",
    }
    claims = Claims.model_validate(payload)
    assert claims.exp.tzinfo is not None and claims.exp.utcoffset() == timedelta(0)
    assert claims.model_dump() == payload
