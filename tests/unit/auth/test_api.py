"""`/api/v1/auth/token`, `/api/v1/users`, the JWKS and the health probes."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from earshot.auth.keys import SigningKey

from .conftest import PASSWORD, AddUser
from .tokens_helpers import payload_of

PROBLEM = "application/problem+json"


async def _admin_token(client: httpx.AsyncClient, add_user: AddUser) -> str:
    await add_user("boss@example.com", admin=True)
    response = await client.post(
        "/api/v1/auth/token", json={"email": "boss@example.com", "password": PASSWORD}
    )
    token: str = response.json()["access_token"]
    return token


@pytest.mark.parametrize(
    "body",
    [
        {"json": {"email": "ada@example.com", "password": PASSWORD}},
        {"json": {"username": "ada@example.com", "password": PASSWORD}},
        {"data": {"username": "ada@example.com", "password": PASSWORD, "grant_type": "password"}},
        {"files": {"username": (None, "ada@example.com"), "password": (None, PASSWORD)}},
    ],
    ids=["json-email", "json-username", "oauth2-form", "multipart-form"],
)
async def test_token_endpoint_accepts_json_and_forms(
    client: httpx.AsyncClient, add_user: AddUser, body: dict[str, object]
) -> None:
    await add_user("ada@example.com")
    response = await client.post("/api/v1/auth/token", **body)  # type: ignore[arg-type]
    assert response.status_code == 200
    data = response.json()
    assert data["token_type"] == "bearer"
    assert data["expires_in"] == 86400
    assert payload_of(data["access_token"])["username"] == "ada@example.com"
    assert response.headers["cache-control"] == "no-store"


async def test_token_endpoint_wrong_password_is_a_401_problem(
    client: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("ada@example.com")
    response = await client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": "nope nope"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == "wrong email or password"


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {"password": PASSWORD}}, 422),
        ({"json": {"email": "a@example.com"}}, 422),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
        ({"content": b"email=a", "headers": {"content-type": "text/plain"}}, 415),
        ({"content": b"x" * 20000, "headers": {"content-type": "application/json"}}, 413),
    ],
    ids=["no-email", "no-password", "bad-json", "plain-text", "too-large"],
)
async def test_token_endpoint_bad_requests_are_problems(
    client: httpx.AsyncClient, kwargs: dict[str, object], status: int
) -> None:
    response = await client.post("/api/v1/auth/token", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM


async def test_jwks_publishes_only_the_public_key(
    client: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert key["kid"] == signing_key.kid
    assert key["alg"] == "EdDSA" and key["kty"] == "OKP" and key["crv"] == "Ed25519"
    assert "d" not in key  # the private part never leaves auth
    assert "max-age" in response.headers["cache-control"]


async def test_an_admin_creates_a_user_who_can_then_log_in(
    client: httpx.AsyncClient, add_user: AddUser
) -> None:
    # given an admin token
    token = await _admin_token(client, add_user)
    # when the admin creates a user
    response = await client.post(
        "/api/v1/users",
        json={"email": "New.User@Example.com", "password": "a fine password"},
        headers={"Authorization": f"Bearer {token}"},
    )
    # then the user exists (email normalised) and can log in
    assert response.status_code == 201
    created = response.json()
    assert created["email"] == "new.user@example.com" and created["is_admin"] is False
    assert created["created_at"].endswith(("Z", "+00:00"))
    login = await client.post("/login", auth=("new.user@example.com", "a fine password"))
    assert login.status_code == 200
    assert payload_of(login.text)["sub"] == created["id"]


async def test_creating_users_needs_an_admin_token(
    client: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("pleb@example.com")
    token = (await client.post("/login", auth=("pleb@example.com", PASSWORD))).text
    body = {"email": "x@example.com", "password": "a fine password"}
    anonymous = await client.post("/api/v1/users", json=body)
    bad = await client.post("/api/v1/users", json=body, headers={"Authorization": "Bearer junk"})
    plain_user = await client.post(
        "/api/v1/users", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert (anonymous.status_code, bad.status_code, plain_user.status_code) == (401, 401, 403)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert all(r.headers["content-type"] == PROBLEM for r in (anonymous, bad, plain_user))


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"email": "boss@example.com", "password": "a fine password"}, 409, "already exists"),
        ({"email": "x@example.com", "password": "short"}, 422, "at least 8 characters"),
        ({"email": "not-an-email", "password": "a fine password"}, 422, "email"),
    ],
    ids=["taken", "short-password", "bad-email"],
)
async def test_creating_a_user_reports_clear_problems(
    client: httpx.AsyncClient, add_user: AddUser, body: dict[str, str], status: int, detail: str
) -> None:
    token = await _admin_token(client, add_user)
    response = await client.post(
        "/api/v1/users", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert detail in response.json()["detail"]


async def test_health_and_readiness(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}


async def test_openapi_documents_both_credential_encodings(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    content = spec["paths"]["/api/v1/auth/token"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(content)
