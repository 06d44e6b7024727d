"""Operating earshot: `earshot up`, memory during a 1 GB upload, the size limit at the edge."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import login
from tests.e2e.system import System, earshot, running

# Whole processes on 2 cores: slower than a unit test, bounded all the same.
pytestmark = pytest.mark.timeout(600)

GIB = 1 << 30
CHUNK = b"\0" * (1 << 20)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    sys_ = System(tmp_path_factory.mktemp("earshot-ops"))
    done = earshot(
        "user", "add", "georgio@email.com", "--password-stdin", env=sys_.env, stdin="Admin123\n"
    )
    assert done.returncode == 0, done.stderr
    yield from running(sys_)


def multipart_stream(boundary: str, total_bytes: int) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mkv"\r\n'
        "Content-Type: video/x-matroska\r\n\r\n"
    ).encode()
    for _ in range(total_bytes // len(CHUNK)):
        yield CHUNK
    yield f"\r\n--{boundary}--\r\n".encode()


def peak_rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match
    return int(match.group(1)) * 1024


def test_one_gigabyte_upload_streams_with_flat_gateway_memory(system: System) -> None:
    token = login(system, "georgio@email.com")
    boundary = "earshot-boundary-7d1f"
    # when a 1 GiB file is streamed to the gateway
    response = httpx.post(
        f"{system.url}/upload",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        content=multipart_stream(boundary, GIB),
        timeout=600,
    )
    # then it was read whole (and refused as not media), with the gateway's peak RSS under 150 MB
    assert response.status_code == 415, response.text
    peak = peak_rss_bytes(system.processes["gateway"].pid)
    assert peak < 150 * 1024 * 1024, f"gateway peak RSS {peak / 2**20:.0f} MiB"
    assert system.blobs("videos") == []


def test_declared_oversize_upload_is_refused_before_reading(system: System) -> None:
    token = login(system, "georgio@email.com")
    with socket.create_connection(("127.0.0.1", system.gateway_port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /upload HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {token}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {64 * GIB}\r\n\r\n--b\r\n"
            ).encode()
        )
        reply = sock.recv(65536).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply


def test_earshot_up_starts_everything_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    ops = System(tmp_path)
    env = {k: v for k, v in ops.env.items() if k != "EARSHOT_ADMIN_PASSWORD"}
    up = subprocess.Popen(
        [sys.executable, "-m", "earshot", "up"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert up.stderr is not None
        banner = ""
        deadline = time.monotonic() + 60
        while "first admin created" not in banner and time.monotonic() < deadline:
            banner += up.stderr.readline()
        match = re.search(r"first admin created: (\S+) / (\S+)", banner)
        assert match, banner
        # keep draining the services' logs so a full pipe never blocks them
        threading.Thread(target=up.stderr.read, daemon=True).start()
        assert str(tmp_path) in banner
        ops.wait_ready()
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 4
        # the generated admin password signs in
        token = httpx.post(f"{ops.url}/login", auth=(match[1], match[2]), timeout=10)
        assert token.status_code == 200
        # when Ctrl-C reaches the supervisor
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        # then no service process is left behind
        time.sleep(0.5)
        assert [c.pid for c in children if c.is_running() and c.status() != "zombie"] == []
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if up.stderr is not None:
            up.stderr.close()
