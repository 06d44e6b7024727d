"""Test doubles and helpers for the gateway tests: tokens, a fake auth, a queue that can fail."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from earshot.common.messages import ConversionOptions, JobSubmitted
from earshot.common.queue import Delivery, QueueError
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.common.tokens import StaticKeyVerifier
from earshot.gateway.jobs import Owner, new_job
from earshot.gateway.models import Job
from earshot.gateway.probe import MediaFacts

ISSUER = "earshot"
AUDIENCE = "earshot"
ALICE = ("user-alice", "alice@example.com")
BOB = ("user-bob", "bob@example.com")


class TokenMaker:
    """Signs tokens with a fresh Ed25519 key, as auth would."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()

    def verifier(self) -> StaticKeyVerifier:
        return StaticKeyVerifier(
            self.key.public_key(), algorithm="EdDSA", issuer=ISSUER, audience=AUDIENCE
        )

    def token(
        self, user: tuple[str, str] = ALICE, *, expires_in: float = 3600, admin: bool = False
    ) -> str:
        now = datetime.now(tz=UTC)
        claims = {
            "sub": user[0],
            "username": user[1],
            "admin": admin,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + timedelta(seconds=expires_in),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": "test"})

    def headers(self, user: tuple[str, str] = ALICE, *, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, admin=admin)}"}


class FlakyQueue:
    """The embedded queue, whose `publish` fails while `down` is set and blocks while `hanging`."""

    def __init__(self, inner: EmbeddedQueue) -> None:
        self.inner = inner
        self.down = False
        self.hanging = False
        self.published: list[tuple[str, str]] = []

    async def publish(self, queue: str, body: bytes, *, message_id: str) -> None:
        if self.down:
            raise QueueError("broker unreachable (test)")
        if self.hanging:
            await asyncio.Event().wait()  # a broker that blocks publishers, like a disk alarm
        await self.inner.publish(queue, body, message_id=message_id)
        self.published.append((queue, message_id))

    def consume(self, queue: str) -> AsyncIterator[Delivery]:
        return self.inner.consume(queue)

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[tuple[str, bytes, str]]:
        return await self.inner.dead_letters(queue, limit=limit)

    async def redrive(self, queue: str, message_id: str) -> bool:
        return await self.inner.redrive(queue, message_id)

    async def check(self) -> None:
        if self.down:
            raise QueueError("broker unreachable (test)")
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()


async def take(queue: EmbeddedQueue, name: str, *, timeout: float = 5.0) -> Delivery:
    """The next delivery of queue `name` (acked), or a test failure after `timeout`."""
    deliveries = queue.consume(name)
    try:
        delivery = await asyncio.wait_for(anext(deliveries), timeout)
    finally:
        await deliveries.aclose()  # type: ignore[attr-defined]
    await delivery.ack()
    return delivery


async def drain(queue: EmbeddedQueue, name: str, *, idle: float = 0.2) -> list[Delivery]:
    """Every delivery of `name` available now (each acked)."""
    found: list[Delivery] = []
    while True:
        try:
            found.append(await take(queue, name, timeout=idle))
        except TimeoutError:
            return found


def submitted(delivery: Delivery) -> JobSubmitted:
    return JobSubmitted.model_validate_json(delivery.body)


def fake_auth(calls: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    """Auth's `/login` and `/api/v1/auth/token` as the gateway sees them."""

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path == "/login":
            auth = request.headers.get("authorization")
            if auth is None:
                return httpx.Response(401, text="missing credentials")
            if auth != "Basic " + _basic("alice@example.com", "s3cret-pass"):
                return httpx.Response(401, text="invalid credentials")
            return httpx.Response(200, text="header.payload.signature")
        if request.url.path == "/api/v1/auth/token":
            return httpx.Response(
                200, json={"access_token": "a.b.c", "token_type": "bearer", "expires_in": 60}
            )
        return httpx.Response(404, text="not found")

    return handle


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def multipart(
    *parts: tuple[str, str | None, bytes], boundary: str = "b0undary"
) -> tuple[bytes, str]:
    """A multipart/form-data body of (field name, file name or None, content) and its type."""
    body = bytearray()
    for name, filename, content in parts:
        body += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"Content-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


def file_part(path: Path, field: str = "file") -> tuple[str, str, bytes]:
    return field, path.name, path.read_bytes()


async def blob_keys(blobs: Any, prefix: str = "") -> list[str]:
    return [key async for key in blobs.list_keys(prefix)]


def a_job(job_id: str, *, user_id: str = "u1") -> Job:
    """A queued job row as an upload of `clip.mp4` would make it."""
    return new_job(
        job_id=job_id,
        fid=f"fid-{job_id}",
        owner=Owner(user_id=user_id, username=f"{user_id}@example.com"),
        original_filename="clip.mp4",
        options=ConversionOptions(),
        facts=MediaFacts(container="mov", duration_seconds=1.0, audio_codec="aac"),
        input_bytes=10,
    )
