"""The notifier process: idempotent migrations; `run` works until a signal, then exits cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from earshot.common.messages import NOTIFICATIONS_QUEUE
from earshot.common.queue import open_queue
from earshot.notifier.main import prepare
from earshot.notifier.settings import NotifierSettings
from tests.mail import read_outbox
from tests.unit.notifier.helpers import job_finished, wait_until

RUN_NOTIFIER = (
    "from earshot.notifier.main import run; "
    "from earshot.notifier.settings import NotifierSettings; "
    "run(NotifierSettings())"
)


async def test_prepare_is_idempotent(settings: NotifierSettings) -> None:
    await prepare(settings)
    await prepare(settings)

    with sqlite3.connect(settings.data_dir / "notifier.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = db.execute("SELECT version_num FROM alembic_version_notifier").fetchall()
    db.close()
    assert {"notifications", "alembic_version_notifier"} <= tables
    assert version == [("0002",)]


def test_settings_defaults_derive_from_the_data_dir(tmp_path: Path) -> None:
    settings = NotifierSettings(_env_file=None, data_dir=tmp_path)

    assert settings.notifier_database_url == f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}"
    assert settings.smtp_url == ""
    assert settings.outbox_dir == tmp_path / "outbox"
    assert settings.heartbeat_file == tmp_path / "run" / "notifier.heartbeat"
    assert settings.notifier_max_attempts <= settings.queue_max_deliveries


@pytest.mark.parametrize("mail_from", ["nobody", "a@b.c\nBcc: x@y.z"])
def test_a_bad_from_address_is_refused_at_start(tmp_path: Path, mail_from: str) -> None:
    with pytest.raises(ValueError, match="mail_from"):
        NotifierSettings(_env_file=None, data_dir=tmp_path, mail_from=mail_from)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_run_sends_then_stops_cleanly_on_a_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    # given the notifier running as its own process on embedded defaults
    env = {**os.environ, "EARSHOT_DATA_DIR": str(tmp_path), "EARSHOT_QUEUE_POLL_SECONDS": "0.05"}
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_NOTIFIER],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # when a job outcome is published
        queue = open_queue(f"sqlite:///{tmp_path / 'queue.db'}")
        try:
            await queue.publish(NOTIFICATIONS_QUEUE, job_finished().to_bytes(), message_id="m")
        finally:
            await queue.close()

        # then its email lands in DATA_DIR/outbox and the process stops on the signal
        await wait_until(lambda: read_outbox(tmp_path / "outbox"), timeout=30)
        await wait_until(lambda: (tmp_path / "run" / "notifier.heartbeat").exists())
        process.send_signal(stop_signal)
        returncode = await asyncio.to_thread(process.wait, 20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        stderr = process.stderr.read().decode()
        process.stderr.close()
    assert returncode == 0, stderr
    assert "notifier.stopped" in stderr
    assert [m["Subject"] for m in read_outbox(tmp_path / "outbox")] == ["MP3 Download"]
