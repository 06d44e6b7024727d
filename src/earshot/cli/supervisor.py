"""`earshot up`: run each service as its own process, restart the ones that crash, stop all cleanly.

Children get SIGTERM on Ctrl-C/SIGTERM and SIGKILL past a grace period; on Linux they also receive
SIGTERM when the supervisor itself dies (PR_SET_PDEATHSIG), so no orphan survives a `kill -9`.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

import structlog

PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 20.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
HEALTHY_RUN_SECONDS = 60.0

log = structlog.get_logger()


def service_command(service: str) -> list[str]:
    """The command line that runs one service with this interpreter."""
    return [sys.executable, "-m", "earshot", "serve", service]


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Child:
    name: str
    command: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        log.info("service started", child=self.name, pid=self.process.pid)


class Supervisor:
    """Keeps a set of named commands running until told to stop."""

    def __init__(self, commands: Mapping[str, Sequence[str]]) -> None:
        self._children = [_Child(name, command) for name, command in commands.items()]
        self._stopping = False

    def run(self) -> int:
        """Start every child, supervise until a stop signal, stop them; returns the exit code."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for child in self._children:
            child.start()
        while not self._stopping:
            self._reap_and_restart()
            time.sleep(0.2)
        return self._stop_all()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _reap_and_restart(self) -> None:
        now = time.monotonic()
        for child in self._children:
            if child.process is None:
                if now >= child.restart_at:
                    child.start()
                continue
            code = child.process.poll()
            if code is None:
                continue
            ran_for = now - child.started_at
            child.failures = 0 if ran_for > HEALTHY_RUN_SECONDS else child.failures + 1
            delay = min(RESTART_BACKOFF_MAX_SECONDS, 0.5 * 2**child.failures)
            log.warning("service exited; restarting", child=child.name, code=code, delay=delay)
            child.process = None
            child.restart_at = now + delay

    def _stop_all(self) -> int:
        running = [c.process for c in self._children if c.process and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.info("all services stopped")
        return 0
