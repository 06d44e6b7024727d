"""The `earshot` command as an operator uses it: clear results, one-line errors, no tracebacks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def earshot(
    *args: str, data_dir: Path, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": "/usr/bin:/bin", "EARSHOT_DATA_DIR": str(data_dir), **env}
    return subprocess.run(
        [sys.executable, "-m", "earshot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def test_migrate_creates_every_service_database(tmp_path: Path) -> None:
    done = earshot("migrate", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    for name, table in (
        ("auth.db", "users"),
        ("jobs.db", "jobs"),
        ("notifier.db", "notifications"),
    ):
        with sqlite3.connect(tmp_path / name) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        db.close()
        assert table in tables, (name, tables)
    assert earshot("migrate", data_dir=tmp_path).returncode == 0  # idempotent


def test_user_add_reads_the_password_from_stdin_and_refuses_duplicates(tmp_path: Path) -> None:
    first = earshot(
        "user", "add", "Ada@Example.com", "--admin", "--password-stdin",
        data_dir=tmp_path, stdin="correct horse battery\n",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "user ada@example.com created (admin)"
    again = earshot(
        "user", "add", "ada@example.com", "--password-stdin", data_dir=tmp_path, stdin="x" * 12
    )
    assert again.returncode == 2
    assert again.stderr.startswith("error: ")
    assert len(again.stderr.strip().splitlines()) == 1
    assert "ada@example.com" in again.stderr


@pytest.mark.parametrize(
    ("email", "password", "expected"),
    [("not-an-email", "long-enough-1", "email"), ("bob@example.com", "short", "8")],
)
def test_user_add_bad_input_is_one_clear_line(
    tmp_path: Path, email: str, password: str, expected: str
) -> None:
    done = earshot("user", "add", email, "--password-stdin", data_dir=tmp_path, stdin=password)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and expected in done.stderr
    assert "Traceback" not in done.stderr


def test_a_malformed_setting_is_one_clear_line(tmp_path: Path) -> None:
    done = earshot("migrate", data_dir=tmp_path, EARSHOT_GATEWAY_PORT="eighty")
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid setting EARSHOT_GATEWAY_PORT")
    assert "Traceback" not in done.stderr


def test_production_refuses_to_start_without_a_signing_key(tmp_path: Path) -> None:
    done = earshot("serve", "auth", data_dir=tmp_path, EARSHOT_ENV="production")
    assert done.returncode != 0
    assert "EARSHOT_JWT_PRIVATE_KEY" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "keys").exists()


def test_settings_prints_every_variable(tmp_path: Path) -> None:
    done = earshot("settings", data_dir=tmp_path)
    assert done.returncode == 0
    urls = ("BROKER", "STORAGE", "SMTP", "AUTH_DATABASE", "JOBS_DATABASE", "NOTIFIER_DATABASE")
    for name in ["DATA_DIR", *(f"{url}_URL" for url in urls)]:
        assert f"`EARSHOT_{name}`" in done.stdout
