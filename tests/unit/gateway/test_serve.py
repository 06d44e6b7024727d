"""The gateway as a real process (`main.run` under uvicorn, loopback): memory and clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import psutil
import pytest

from tests.net import free_port

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
MIB = 1024 * 1024
UPLOAD_LIMIT = 512 * MIB
RSS_LIMIT = 150 * MIB


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "EARSHOT_DATA_DIR": str(tmp_path / "data"),
        "EARSHOT_GATEWAY_PORT": str(port),
        "EARSHOT_JWT_ALGORITHM": "HS256",
        "EARSHOT_JWT_SECRET": SECRET,
        "EARSHOT_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "EARSHOT_LOG_FORMAT": "json",
    }
    code = (
        "from earshot.gateway.main import run\n"
        "from earshot.gateway.settings import GatewaySettings\n"
        "run(GatewaySettings())\n"
    )
    log = (tmp_path / "gateway.log").open("wb")
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=log, stdout=log)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _token() -> str:
    now = datetime.now(tz=UTC)
    claims = {
        "sub": "u1",
        "username": "u1@example.com",
        "admin": False,
        "iss": "earshot",
        "aud": "earshot",
        "iat": now,
        "exp": now + timedelta(hours=1),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def _body(size: int) -> AsyncIterator[bytes]:
    yield b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
    block = b"\1" * MIB
    for _ in range(size // MIB):
        yield block
    yield b"\r\n--bnd--\r\n"


async def _wait_ready(client: httpx.AsyncClient, base: str) -> None:
    for _ in range(200):
        try:
            if (await client.get(f"{base}/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not become ready")


async def test_a_large_upload_keeps_memory_flat_and_sigterm_stops_cleanly(
    gateway_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base = gateway_process
    watched = psutil.Process(process.pid)
    peak = 0
    uploading = True

    async def sample() -> None:
        nonlocal peak
        while uploading:
            peak = max(peak, watched.memory_info().rss)
            await asyncio.sleep(0.01)

    async with httpx.AsyncClient(timeout=120) as client:
        await _wait_ready(client, base)
        sampler = asyncio.create_task(sample())
        try:
            # 300 MB of bytes that are not media: streamed and stored, then refused by the probe
            response = await client.post(
                f"{base}/upload",
                content=_body(300 * MIB),
                headers={
                    "Authorization": f"Bearer {_token()}",
                    "Content-Type": "multipart/form-data; boundary=bnd",
                },
            )
        finally:
            uploading = False
            await sampler

    assert (response.status_code, response.text) == (415, "not a media file")
    assert peak < RSS_LIMIT, f"peak RSS {peak / MIB:.0f} MiB"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
