"""`prepare` (migrations) and `run` (a real process that stops cleanly on SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import inspect

from earshot.auth.main import prepare
from earshot.auth.settings import AuthSettings
from earshot.common.db import create_engine
from tests.net import free_port


async def test_prepare_creates_the_users_table_and_is_idempotent(settings: AuthSettings) -> None:
    await prepare(settings)
    await prepare(settings)
    engine = create_engine(settings.auth_database_url)
    try:
        async with engine.connect() as connection:
            columns, uniques = await connection.run_sync(
                lambda sync: (
                    {c["name"] for c in inspect(sync).get_columns("users")},
                    inspect(sync).get_unique_constraints("users"),
                )
            )
    finally:
        await engine.dispose()
    assert columns == {"id", "email", "password_hash", "is_admin", "created_at"}
    assert [u["column_names"] for u in uniques] == [["email"]]


def test_run_serves_until_sigterm_then_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "EARSHOT_DATA_DIR": str(tmp_path),
        "EARSHOT_AUTH_PORT": str(port),
        "EARSHOT_LOG_FORMAT": "json",
    }
    code = "from earshot.auth.main import run; from earshot.auth.settings import AuthSettings; "
    code += "run(AuthSettings(_env_file=None))"
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "auth did not become ready"
            time.sleep(0.1)
        assert (tmp_path / "auth.db").exists()
        assert (tmp_path / "keys" / "jwt-eddsa.pem").exists()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "auth_stopped" in stderr


def test_run_refuses_production_without_a_key_in_one_line(tmp_path: Path) -> None:
    env = {**_clean_environ(), "EARSHOT_DATA_DIR": str(tmp_path), "EARSHOT_ENV": "production"}
    code = "from earshot.auth.main import run; from earshot.auth.settings import AuthSettings; "
    code += "run(AuthSettings(_env_file=None))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "earshot auth: EARSHOT_JWT_PRIVATE_KEY or EARSHOT_JWT_PRIVATE_KEY_FILE must be set when "
        "EARSHOT_ENV=production (EARSHOT_JWT_ALGORITHM=EdDSA)"
    ]
    assert not (tmp_path / "auth.db").exists()


def _clean_environ() -> dict[str, str]:
    """The environment without EARSHOT_ settings of whoever runs the tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}
