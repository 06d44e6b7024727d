"""A users database that cannot be reached gives 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from earshot.auth.app import create_app
from earshot.auth.keys import SigningKey
from earshot.auth.passwords import Passwords
from earshot.auth.settings import AuthSettings


def sqlite_workers() -> set[threading.Thread]:
    """aiosqlite's per-connection threads that are alive now."""
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def join_new_sqlite_workers(before: set[threading.Thread]) -> None:
    """Wait, with the loop alive, for the threads of the failed connections to end.

    aiosqlite stops the thread of a connection that failed to open without awaiting it; left
    alone, it may report to a loop the test has already closed.
    """
    for thread in sqlite_workers() - before:
        await asyncio.to_thread(thread.join, 10)


async def test_logins_during_a_database_outage_are_503_with_retry_after(
    settings: AuthSettings, signing_key: SigningKey, passwords: Passwords, tmp_path: Path
) -> None:
    # given a users database whose folder does not exist (it cannot be opened)
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'auth.db'}")
    workers_before = sqlite_workers()
    app = create_app(settings, engine=engine, signing_key=signing_key, passwords=passwords)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
            # when someone signs in, on the course route and on the API
            course = await client.post("/login", auth=("ada@example.com", "password-123"))
            api = await client.post(
                "/api/v1/auth/token", json={"email": "ada@example.com", "password": "password-123"}
            )
    finally:
        await engine.dispose()
        await join_new_sqlite_workers(workers_before)
    # then both say "later", each in its route's style
    assert (course.status_code, course.text) == (
        503,
        "the users database is unavailable, retry later",
    )
    assert course.headers["retry-after"] == "5"
    assert api.status_code == 503
    assert api.headers["content-type"].startswith("application/problem+json")
    assert api.headers["retry-after"] == "5"
