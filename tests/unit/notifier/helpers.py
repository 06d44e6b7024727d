"""Builders and probes shared by the notifier tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from earshot.common.mail import Mailer
from earshot.common.messages import JobFinished


def job_finished(**overrides: Any) -> JobFinished:
    """A `JobFinished` as the gateway publishes it; succeeded unless told otherwise."""
    values: dict[str, Any] = {
        "job_id": "j-123",
        "outcome": "succeeded",
        "user_id": "u-1",
        "username": "alice@example.com",
        "video_fid": "v-1",
        "mp3_fid": "m-1",
        "original_filename": "holiday.mkv",
        "download_url": "http://127.0.0.1:8080/download?fid=m-1",
        "occurred_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
    values.update(overrides)
    return JobFinished(**values)


def failed_job(**overrides: Any) -> JobFinished:
    """A `JobFinished` for a failed job."""
    values: dict[str, Any] = {
        "outcome": "failed",
        "mp3_fid": None,
        "download_url": None,
        "error": "the video has no audio track",
    }
    values.update(overrides)
    return job_finished(**values)


async def wait_until(condition: Callable[[], Any], *, timeout: float = 10.0) -> None:
    """Poll `condition` (sync or async) until truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


@dataclass
class CountingMailer:
    """A real mailer that also counts what was handed to it."""

    inner: Mailer
    sent: list[str] = field(default_factory=list)

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(str(message["Message-ID"]))
        await self.inner.send(message)

    async def check(self) -> None:
        await self.inner.check()


@dataclass
class HeldDelivery:
    """A delivery handed to the handler directly, as a redelivery after a crash would be."""

    body: bytes
    message_id: str = "m-1"
    attempt: int = 1
    settled: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.settled.append("ack")

    async def retry(self, *, delay_seconds: float) -> None:
        self.settled.append("retry")

    async def dead_letter(self, *, reason: str) -> None:
        self.settled.append("dead_letter")
