"""The whole earshot system as separate processes, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.net import free_port

SERVICES = ("auth", "gateway", "notifier", "converter")


def earshot(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `earshot` command once."""
    return subprocess.run(
        [sys.executable, "-m", "earshot", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class System:
    """Four services on embedded defaults in one data directory."""

    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    gateway_port: int = field(default_factory=free_port)
    auth_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _counter: int = 0

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}
        env.update(
            EARSHOT_DATA_DIR=str(self.data_dir),
            EARSHOT_GATEWAY_PORT=str(self.gateway_port),
            EARSHOT_AUTH_PORT=str(self.auth_port),
            EARSHOT_AUTH_URL=f"http://127.0.0.1:{self.auth_port}",
            EARSHOT_PUBLIC_URL=f"http://127.0.0.1:{self.gateway_port}",
            EARSHOT_LOG_FORMAT="json",
            EARSHOT_QUEUE_LEASE_SECONDS="3",
            EARSHOT_QUEUE_POLL_SECONDS="0.1",
            EARSHOT_ADMIN_EMAIL="admin@example.com",
            EARSHOT_ADMIN_PASSWORD="admin-password-123",
        )
        env.update(self.extra_env)
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.auth_port}"

    def start(self, service: str) -> subprocess.Popen[bytes]:
        """Start one service (several converters get distinct names: converter, converter-2...)."""
        kind = service.split("-")[0]
        self._counter += 1
        log = (self.data_dir / f"{service}.{self._counter}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "earshot", "serve", kind],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes[service] = process
        return process

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for url in (f"{self.auth_url}/readyz", f"{self.url}/readyz"):
            while True:
                self.assert_alive()
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} not ready in {timeout}s\n{self.logs()}")
                time.sleep(0.2)

    def assert_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}\n{self.logs()}")

    def stop(self, service: str, *, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal a service and wait for it to exit; returns its exit code."""
        process = self.processes.pop(service)
        process.send_signal(sig)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{service} ignored signal {sig} for {timeout}s") from None

    def stop_all(self) -> dict[str, int]:
        return {name: self.stop(name) for name in list(self.processes)}

    def logs(self) -> str:
        parts = []
        for path in sorted(self.data_dir.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def emails(self) -> list[Path]:
        outbox = self.data_dir / "outbox"
        return sorted(outbox.glob("*.eml")) if outbox.exists() else []

    def blobs(self, prefix: str) -> list[Path]:
        root = self.data_dir / "blobs" / prefix
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def running(system: System) -> Iterator[System]:
    """Start every service, yield, stop every service (helper for fixtures)."""
    system.start_all()
    try:
        yield system
    finally:
        # Whatever a test left running is killed; clean stops are asserted by the tests themselves.
        for process in system.processes.values():
            process.kill()
            process.wait()
        system.processes.clear()
