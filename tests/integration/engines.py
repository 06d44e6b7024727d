"""Isolated resources on this machine's real engines for one test run (created, then removed)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

MARIADB_PORT = 3306
RABBITMQ_PORT = 5672


def _run(args: list[str], *, timeout: float = 120) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def mariadb_sql(sql: str) -> str:
    """Run SQL as root on the local MariaDB."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    assert client, "the MariaDB client is not installed (the MariaDB server package brings it)"
    return _run([client, "-uroot", "-h127.0.0.1", f"-P{MARIADB_PORT}", "-N", "-e", sql])


@contextmanager
def mariadb_databases(*names: str) -> Iterator[dict[str, str]]:
    """Fresh, uniquely named databases; yields {name: real database name}."""
    suffix = uuid.uuid4().hex[:8]
    real = {name: f"earshot_{suffix}_{name}" for name in names}
    mariadb_sql("; ".join(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4" for db in real.values()))
    try:
        yield real
    finally:
        mariadb_sql("; ".join(f"DROP DATABASE IF EXISTS `{db}`" for db in real.values()))


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh RabbitMQ virtual host that guest may use; deleted afterwards."""
    vhost = f"earshot-{uuid.uuid4().hex[:8]}"
    _run(["rabbitmqctl", "-q", "add_vhost", vhost])
    _run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"])
    try:
        yield vhost
    finally:
        _run(["rabbitmqctl", "-q", "delete_vhost", vhost])


def restart_rabbitmq() -> float:
    """Stop the RabbitMQ application and start it again; returns how long it was down."""
    started = time.monotonic()
    _run(["rabbitmqctl", "-q", "stop_app"])
    _run(["rabbitmqctl", "-q", "start_app"])
    _run(["rabbitmqctl", "-q", "await_startup"])
    return time.monotonic() - started
