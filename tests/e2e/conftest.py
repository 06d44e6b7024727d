"""End-to-end fixtures: the four services as real processes on embedded defaults."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from tests.e2e.system import System, earshot, running
from tests.mail import plain_text, read_email

pytestmark = pytest.mark.e2e

USERS = {
    "georgio@email.com": "Admin123",
    "other@example.com": "other-password-9",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A running system with the course's user and a second user."""
    sys_ = System(tmp_path_factory.mktemp("earshot"))
    assert earshot("migrate", env=sys_.env).returncode == 0
    for email, password in USERS.items():
        done = earshot(
            "user", "add", email, "--password-stdin", env=sys_.env, stdin=password + "\n"
        )
        assert done.returncode == 0, done.stderr
    yield from running(sys_)


def login(system: System, email: str) -> str:
    """A bearer token for one of USERS."""
    response = httpx.post(f"{system.url}/login", auth=(email, USERS[email]), timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def wait_for_job(
    system: System,
    token: str,
    job_id: str,
    *,
    until: Callable[[dict[str, Any]], bool] = lambda job: job["state"] in ("succeeded", "failed"),
    timeout: float = 120,
) -> dict[str, Any]:
    """Poll the job until `until` holds."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(
            f"{system.url}/api/v1/jobs/{job_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} stuck in {job}\n{system.logs()}")
        time.sleep(0.2)


def emails_for(system: System, needle: str) -> list[EmailMessage]:
    """Outbox emails whose subject or text mentions `needle` (a fid, a job id, a reason)."""
    found = []
    for path in system.emails():
        message = read_email(path)
        if needle in plain_text(message) or needle in str(message["Subject"]):
            found.append(message)
    return found


def wait_for_emails(
    system: System, needle: str, *, count: int = 1, timeout: float = 60, settle: float = 1.0
) -> list[EmailMessage]:
    """The emails mentioning `needle` once `count` of them arrived, after `settle` seconds more
    (time for a duplicate, if there were to be one, to show up too)."""
    deadline = time.monotonic() + timeout
    while len(emails_for(system, needle)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} emails about {needle}\n{system.logs()}")
        time.sleep(0.2)
    time.sleep(settle)
    return emails_for(system, needle)
