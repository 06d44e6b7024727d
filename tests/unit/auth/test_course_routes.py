"""The course's `/login` and `/validate`: statuses and plain-text bodies as the course has them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from earshot.auth.keys import SigningKey, from_private_key, generate_private_key
from earshot.auth.settings import AuthSettings

from .conftest import PASSWORD, AddUser
from .tokens_helpers import header_of, mint, payload_of, tampered, unsigned


async def test_login_returns_a_jwt_with_the_course_and_registered_claims(
    client: httpx.AsyncClient, add_user: AddUser, signing_key: SigningKey
) -> None:
    # given a user
    user = await add_user("georgio@email.com")
    # when they log in the course's way (curl -u)
    before = datetime.now(tz=UTC).replace(microsecond=0)
    response = await client.post("/login", auth=("georgio@email.com", PASSWORD))
    # then the body is the raw JWT, and its claims hold the course's four plus the standard ones
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    claims = payload_of(response.text)
    assert claims["username"] == "georgio@email.com"
    assert claims["admin"] is False
    assert claims["sub"] == user.id
    assert claims["iss"] == "earshot" and claims["aud"] == "earshot"
    assert len(claims["jti"]) == 36
    assert before.timestamp() <= claims["iat"] <= datetime.now(tz=UTC).timestamp()
    assert claims["exp"] - claims["iat"] == 86400
    assert header_of(response.text) == {"alg": "EdDSA", "kid": signing_key.kid, "typ": "JWT"}


async def test_login_normalises_the_email(client: httpx.AsyncClient, add_user: AddUser) -> None:
    await add_user("Mixed.Case@Example.com ")
    response = await client.post("/login", auth=("  MIXED.case@example.COM", PASSWORD))
    assert response.status_code == 200
    assert payload_of(response.text)["username"] == "mixed.case@example.com"


async def test_each_login_gets_a_fresh_token_id(
    client: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("georgio@email.com")
    first = await client.post("/login", auth=("georgio@email.com", PASSWORD))
    second = await client.post("/login", auth=("georgio@email.com", PASSWORD))
    assert payload_of(first.text)["jti"] != payload_of(second.text)["jti"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic"},
    ],
)
async def test_login_without_basic_credentials_is_401_missing_credentials(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/login", headers=headers)
    assert response.status_code == 401
    assert response.text == "missing credentials"


async def test_wrong_password_and_unknown_user_are_the_same_401(
    client: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("georgio@email.com")
    wrong = await client.post("/login", auth=("georgio@email.com", "not the password"))
    unknown = await client.post("/login", auth=("nobody@email.com", PASSWORD))
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.text == "invalid credentials"


async def test_validate_returns_the_claims_of_a_good_token(
    client: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("boss@email.com", admin=True)
    token = (await client.post("/login", auth=("boss@email.com", PASSWORD))).text
    response = await client.post("/validate", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == payload_of(token)
    assert response.json()["admin"] is True
    assert isinstance(response.json()["exp"], int)


def _other_key() -> SigningKey:
    return from_private_key(generate_private_key("EdDSA"), algorithm="EdDSA")


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda key, s: mint(key, s, issued_ago=timedelta(days=2)), id="expired"),
        pytest.param(lambda key, s: tampered(mint(key, s), admin=True), id="tampered"),
        pytest.param(lambda key, s: unsigned(mint(key, s)), id="alg-none"),
        pytest.param(lambda key, s: mint(_other_key(), s), id="other-key"),
        pytest.param(lambda key, s: mint(key, s, issuer="someone-else"), id="wrong-iss"),
        pytest.param(lambda key, s: mint(key, s, audience="another-app"), id="wrong-aud"),
        pytest.param(lambda key, s: "not.a.jwt", id="malformed"),
        pytest.param(lambda key, s: "", id="empty"),
    ],
)
async def test_validate_refuses_bad_tokens_with_403_not_authorized(
    client: httpx.AsyncClient, signing_key: SigningKey, settings: AuthSettings, forge: object
) -> None:
    token = forge(signing_key, settings)  # type: ignore[operator]
    response = await client.post("/validate", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.text == "not authorized"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic Zm9vOmJhcg=="}])
async def test_validate_without_a_bearer_token_is_403(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/validate", headers=headers)
    assert response.status_code == 403
    assert response.text == "not authorized"
