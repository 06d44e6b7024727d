"""This machine's RabbitMQ in tests: a virtual host per test session, queue clean-up, restarts.

Queue names are constants of the app, so tests isolate by virtual host: each session makes its own
(`earshot-test-<pid>-<hex>`, guest gets all rights on it) with `rabbitmqctl` and deletes it at the
end; a host left by a killed session is removed by the next one once its process is gone. Inside
a session each test deletes the queues it declared. No broker means a failed test, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from uuid import uuid4

import aio_pika
import psutil
import pytest

HOST, PORT = "127.0.0.1", 5672
VHOST_PREFIX = "earshot-test-"
START_TIMEOUT_SECONDS = 60.0


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run `rabbitmqctl` against this machine's broker; fail the test if it fails."""
    exe = shutil.which("rabbitmqctl") or shutil.which("rabbitmqctl", path="/usr/sbin:/sbin")
    if exe is None:
        pytest.fail("rabbitmqctl not found: the RabbitMQ tests need it to make a virtual host")
    done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip() or done.stdout}")
    return done.stdout


def broker_listening() -> bool:
    """True when something accepts connections on the AMQP port."""
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError:
        return False
    return True


@contextmanager
def session_vhost() -> Iterator[str]:
    """A fresh virtual host for the duration of the block; yields its amqp:// URL."""
    if not broker_listening():
        pytest.fail(
            f"RabbitMQ is not running on {HOST}:{PORT}; start it (`.ci/run` does, as root: "
            "`rabbitmq-server -detached`)"
        )
    _remove_orphans()
    name = f"{VHOST_PREFIX}{os.getpid()}-{uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{HOST}:{PORT}/{name}"
    finally:
        rabbitmqctl("delete_vhost", name)


def _remove_orphans() -> None:
    listed = rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers")
    for vhost in listed.split():
        owner = vhost.removeprefix(VHOST_PREFIX).split("-")[0]
        if vhost.startswith(VHOST_PREFIX) and owner.isdigit() and not psutil.pid_exists(int(owner)):
            rabbitmqctl("delete_vhost", vhost)


class _SharedVhost:
    """One virtual host for all modules importing the fixture (each has a fixture of its own)."""

    def __init__(self) -> None:
        self.users = 0
        self._url: str | None = None
        self._vhost: contextlib.ExitStack | None = None

    def acquire(self) -> str:
        if self._url is None:
            self._vhost = contextlib.ExitStack()
            self._url = self._vhost.enter_context(session_vhost())
        self.users += 1
        return self._url

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and self._vhost is not None:
            self._url, vhost, self._vhost = None, self._vhost, None
            vhost.close()


_shared = _SharedVhost()


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """The amqp:// URL of a virtual host made for this test session."""
    url = _shared.acquire()
    try:
        yield url
    finally:
        _shared.release()


async def delete_queues(url: str, names: Iterable[str]) -> None:
    """Delete queues (messages and arguments with them) so the next test starts empty."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in sorted(set(names)):
            await channel.queue_delete(name)
    finally:
        await connection.close()


def restart_broker() -> float:
    """Stop and start the RabbitMQ application (the node stays); returns the seconds it was down."""
    stopped_at = time.monotonic()
    rabbitmqctl("stop_app")
    try:
        time.sleep(1.0)  # down long enough for every client to notice
    finally:
        rabbitmqctl("start_app")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not broker_listening():
        if time.monotonic() > deadline:
            pytest.fail("RabbitMQ did not listen again after start_app")
        time.sleep(0.1)
    return time.monotonic() - stopped_at
