"""Login throttling per account and per client, and finding the client behind trusted proxies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from earshot.auth import ratelimit
from earshot.auth.app import create_app
from earshot.auth.keys import SigningKey
from earshot.auth.passwords import Passwords
from earshot.auth.ratelimit import FailureWindow, client_address, parse_networks

from .conftest import PASSWORD, AddUser, MakeSettings

WINDOW_SECONDS = 0.6


@pytest.fixture
async def throttled(
    make_settings: MakeSettings, engine: AsyncEngine, signing_key: SigningKey, passwords: Passwords
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app allowing 3 failures per account and 5 per client in a short window."""
    settings = make_settings(
        login_max_failures_per_account=3,
        login_max_failures_per_client=5,
        login_failure_window_seconds=WINDOW_SECONDS,
    )
    app = create_app(settings, engine=engine, signing_key=signing_key, passwords=passwords)
    # the peer is loopback, a trusted proxy: X-Forwarded-For names the client, as via the gateway
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        yield client


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_failures_on_one_account_are_throttled_then_allowed_after_the_window(
    throttled: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("ada@example.com")
    # given three failed attempts on one account
    for _ in range(3):
        failed = await throttled.post("/login", auth=("ada@example.com", "guess guess"))
        assert failed.status_code == 401
    # when the right password comes next, it is refused too until the window has passed
    blocked = await throttled.post("/login", auth=("ada@example.com", PASSWORD))
    assert blocked.status_code == 429
    assert blocked.text == "too many attempts"
    assert blocked.headers["retry-after"] == "1"  # whole seconds, rounded up
    await asyncio.sleep(WINDOW_SECONDS + 0.05)
    # then the login succeeds
    assert (await throttled.post("/login", auth=("ada@example.com", PASSWORD))).status_code == 200


async def test_the_account_limit_applies_whichever_client_guesses(
    throttled: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("ada@example.com")
    for n in range(3):
        await throttled.post(
            "/login", auth=("ada@example.com", "x" * 9), headers=_from(f"198.51.100.{n}")
        )
    response = await throttled.post(
        "/login", auth=("ada@example.com", PASSWORD), headers=_from("198.51.100.99")
    )
    assert response.status_code == 429


async def test_one_client_spraying_many_accounts_is_throttled_alone(
    throttled: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("ada@example.com")
    for n in range(5):
        await throttled.post(
            "/login", auth=(f"user{n}@example.com", "guess guess"), headers=_from("192.0.2.1")
        )
    sprayer = await throttled.post(
        "/login", auth=("ada@example.com", PASSWORD), headers=_from("192.0.2.1")
    )
    someone_else = await throttled.post(
        "/login", auth=("ada@example.com", PASSWORD), headers=_from("192.0.2.2")
    )
    assert sprayer.status_code == 429
    assert someone_else.status_code == 200


async def test_successful_logins_do_not_count(
    throttled: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("ada@example.com")
    for _ in range(8):
        response = await throttled.post("/login", auth=("ada@example.com", PASSWORD))
        assert response.status_code == 200


async def test_a_burst_of_parallel_guesses_cannot_slip_past_the_limit(
    throttled: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("ada@example.com")
    responses = await asyncio.gather(
        *(throttled.post("/login", auth=("ada@example.com", f"guess {n} guess")) for n in range(10))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(401) == 3
    assert statuses.count(429) == 7


async def test_the_api_answers_429_as_a_problem_with_retry_after(
    throttled: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("ada@example.com")
    body = {"email": "ada@example.com", "password": "guess guess"}
    for _ in range(3):
        assert (await throttled.post("/api/v1/auth/token", json=body)).status_code == 401
    response = await throttled.post("/api/v1/auth/token", json=body)
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"


TRUSTED = parse_networks(["127.0.0.1", "::1", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # untrusted peers cannot claim others
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # forged left part ignored
        ("127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"),  # through two proxies
        ("::1", "10.0.0.1, 10.0.0.2", "10.0.0.1"),  # only proxies: the farthest one
        ("127.0.0.1", "garbage", "garbage"),
        (None, None, "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, trusted=TRUSTED) == expected


def test_the_failure_table_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(ratelimit, "MAX_TRACKED_KEYS", 10)
    window = FailureWindow(max_failures=2, window_seconds=5, clock=lambda: now[0])
    for n in range(25):
        window.record_failure(f"key-{n}")
    assert len(window._failures) <= 10
    now[0] = 100.0
    window.record_failure("late")
    assert window.retry_after("key-24") == 0
