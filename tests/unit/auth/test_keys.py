"""Signing keys: generated once in development and reused, loaded from settings, refused in prod."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from earshot.auth.app import create_app
from earshot.auth.keys import (
    dev_key_path,
    from_private_key,
    generate_private_key,
    jwk_thumbprint,
    load_signing_key,
    private_key_pem,
)
from earshot.auth.settings import AuthSettings
from earshot.common.db import create_engine
from earshot.common.settings import SettingsError
from earshot.common.tokens import StaticKeyVerifier, shared_secret

from .conftest import PASSWORD, AddUser, MakeSettings
from .tokens_helpers import header_of


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _login(app: FastAPI, email: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://auth"
    ) as client:
        return await client.post("/login", auth=(email, PASSWORD))


async def _validate(app: FastAPI, token: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://auth"
    ) as client:
        return await client.post("/validate", headers={"Authorization": f"Bearer {token}"})


async def test_the_dev_key_is_generated_once_and_reused_across_restarts(
    settings: AuthSettings, add_user: AddUser
) -> None:
    # given a first run that generated the key and issued a token
    await add_user("ada@example.com")
    first_key = load_signing_key(settings)
    path = dev_key_path(settings)
    assert path.exists() and _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    engine = create_engine(settings.auth_database_url)
    try:
        token = (
            await _login(
                create_app(settings, engine=engine, signing_key=first_key), "ada@example.com"
            )
        ).text
        # when auth restarts on the same data directory
        second_key = load_signing_key(settings)
        restarted = create_app(settings, engine=engine, signing_key=second_key)
        # then it signs with the same key, and tokens from before still validate
        assert second_key.kid == first_key.kid
        assert (await _validate(restarted, token)).status_code == 200
    finally:
        await engine.dispose()


def test_the_kid_is_the_rfc7638_thumbprint() -> None:
    # the example key of RFC 7638 section 3.1 and its published thumbprint
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
        "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
        "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vM"
        "QFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


async def test_rs256_mode_end_to_end(make_settings: MakeSettings, add_user: AddUser) -> None:
    settings = make_settings(jwt_algorithm="RS256")
    key = load_signing_key(settings)
    assert isinstance(key.private_key, rsa.RSAPrivateKey)
    assert dev_key_path(settings).name == "jwt-rs256.pem"
    await add_user("ada@example.com")
    engine = create_engine(settings.auth_database_url)
    try:
        app = create_app(settings, engine=engine, signing_key=key)
        token = (await _login(app, "ada@example.com")).text
        assert header_of(token) == {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
        assert (await _validate(app, token)).status_code == 200
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://auth"
        ) as client:
            (jwk,) = (await client.get("/.well-known/jwks.json")).json()["keys"]
        assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and "d" not in jwk
    finally:
        await engine.dispose()


async def test_hs256_mode_end_to_end(make_settings: MakeSettings, add_user: AddUser) -> None:
    # given HS256 with no secret configured (development)
    settings = make_settings(jwt_algorithm="HS256")
    key = load_signing_key(settings)
    secret_file = settings.data_dir / "keys" / "jwt-hs256.secret"
    assert _mode(secret_file) == 0o600
    await add_user("ada@example.com")
    engine = create_engine(settings.auth_database_url)
    try:
        app = create_app(settings, engine=engine, signing_key=key)
        # when a user logs in
        token = (await _login(app, "ada@example.com")).text
        # then the token is HS256, auth validates it, the JWKS stays empty, and the gateway's
        # verifier built from the same data directory accepts it
        assert header_of(token) == {"alg": "HS256", "typ": "JWT"}
        assert (await _validate(app, token)).status_code == 200
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://auth"
        ) as client:
            assert (await client.get("/.well-known/jwks.json")).json() == {"keys": []}
        gateway_side = StaticKeyVerifier(
            shared_secret(settings, None), algorithm="HS256", issuer="earshot", audience="earshot"
        )
        assert (await gateway_side.verify(token)).username == "ada@example.com"
    finally:
        await engine.dispose()


async def test_a_token_from_another_algorithm_is_refused(
    make_settings: MakeSettings, add_user: AddUser
) -> None:
    eddsa = make_settings()
    rs256 = make_settings(jwt_algorithm="RS256")
    await add_user("ada@example.com")
    engine = create_engine(eddsa.auth_database_url)
    try:
        eddsa_app = create_app(eddsa, engine=engine, signing_key=load_signing_key(eddsa))
        rs256_app = create_app(rs256, engine=engine, signing_key=load_signing_key(rs256))
        token = (await _login(eddsa_app, "ada@example.com")).text
        assert (await _validate(rs256_app, token)).text == "not authorized"
    finally:
        await engine.dispose()


def test_a_configured_pem_is_used_as_is(make_settings: MakeSettings, tmp_path: Path) -> None:
    private = generate_private_key("EdDSA")
    pem = private_key_pem(private).decode()
    expected = from_private_key(private, algorithm="EdDSA").kid
    from_text = load_signing_key(make_settings(jwt_private_key=pem))
    one_line = load_signing_key(make_settings(jwt_private_key=pem.replace("\n", "\\n")))
    key_file = tmp_path / "signing.pem"
    key_file.write_text(pem)
    from_file = load_signing_key(make_settings(jwt_private_key_file=key_file))
    assert from_text.kid == one_line.kid == from_file.kid == expected
    assert not (tmp_path / "keys").exists()  # nothing generated when a key is configured


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "EARSHOT_JWT_PRIVATE_KEY or EARSHOT_JWT_PRIVATE_KEY_FILE must be set"),
        ({"jwt_private_key": "changeme"}, "EARSHOT_JWT_PRIVATE_KEY must be set to a real secret"),
        ({"jwt_algorithm": "HS256"}, "EARSHOT_JWT_SECRET must be set to a real secret"),
        ({"jwt_algorithm": "HS256", "jwt_secret": "secret"}, "EARSHOT_JWT_SECRET must be set"),
        ({"jwt_algorithm": "HS256", "jwt_secret": "too-short-1234"}, "at least 32 bytes"),
    ],
    ids=["no-key", "placeholder-key", "no-secret", "placeholder-secret", "short-secret"],
)
def test_production_refuses_missing_or_placeholder_keys(
    make_settings: MakeSettings, overrides: dict[str, str], message: str
) -> None:
    settings = make_settings(env="production", **overrides)
    with pytest.raises(SettingsError) as refused:
        load_signing_key(settings)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not (settings.data_dir / "keys").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwt_private_key": "-----BEGIN PRIVATE KEY-----\nnope\n"}, "not an unencrypted PEM"),
        ({"jwt_private_key_file": "/nonexistent/key.pem"}, "cannot read /nonexistent/key.pem"),
    ],
)
def test_unusable_configured_keys_are_refused_clearly(
    make_settings: MakeSettings, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_signing_key(make_settings(**overrides))


def test_a_key_of_the_wrong_type_is_refused(make_settings: MakeSettings) -> None:
    rsa_pem = private_key_pem(generate_private_key("RS256")).decode()
    with pytest.raises(SettingsError, match="EdDSA needs an Ed25519 private key"):
        load_signing_key(make_settings(jwt_private_key=rsa_pem))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(SettingsError, match="at least 2048 bits"):
        from_private_key(small, algorithm="RS256")
