"""`deploy/mysql/init.sql` on the local MariaDB, then `earshot migrate` as the users it made.

The file runs as the operator would run it (the `mariadb`/`mysql` client as root, passwords on
standard input), with every database and user name given a unique suffix so parallel runs and the
machine's own databases are never touched; all of it is dropped afterwards.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from earshot.auth.passwords import Passwords
from earshot.auth.settings import AuthSettings
from earshot.auth.users import authenticate
from earshot.common.db import create_engine, session_factory
from tests.integration.conftest import MARIADB_ADDRESS, mariadb_url, require_engine

pytestmark = pytest.mark.integration

INIT_SQL = Path(__file__).parents[2] / "deploy" / "mysql" / "init.sql"
SERVICES = ("auth", "jobs", "notifier")
FAST_ARGON2 = {"EARSHOT_ARGON2_TIME_COST": "1", "EARSHOT_ARGON2_MEMORY_KIB": "256"}


def mysql_client() -> str:
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        pytest.fail("the mariadb/mysql client is not installed (it comes with the server)")
    return client


def run_sql(sql: str, *, user: str = "root", password: str = "", check: bool = True) -> str:
    """Run SQL through the command-line client over TCP, as an operator would; its output."""
    host, port = MARIADB_ADDRESS
    args = [mysql_client(), f"-h{host}", f"-P{port}", f"-u{user}", "--batch"]
    done = subprocess.run(
        args,
        input=sql,
        capture_output=True,
        text=True,
        timeout=60,
        # MYSQL_PWD keeps the password off the command line.
        env={"PATH": "/usr/bin:/bin", "MYSQL_PWD": password},
    )
    if check and done.returncode != 0:
        pytest.fail(f"{user}: {done.stderr.strip()}\n--- SQL ---\n{sql[-2000:]}")
    return done.stdout + done.stderr


@dataclass
class Installed:
    """Names the file created (suffixed), the passwords, and what it printed."""

    names: dict[str, str]
    passwords: dict[str, str]
    output: str

    def user(self, service: str) -> str:
        return f"{self.names[service]}_user"

    def url(self, service: str) -> str:
        user, password = self.user(service), self.passwords[service]
        return mariadb_url(self.names[service], user=user, password=password)


def suffixed(sql: str, suffix: str) -> str:
    """The file with every quoted database and user name made unique."""
    pattern = r"(?<=[`'])(auth|jobs|notifier)(_user)?(?=[`'])"
    return re.sub(pattern, lambda m: f"{m[1]}_{suffix}{m[2] or ''}", sql)


def generated_passwords(output: str) -> dict[str, str]:
    """{user: password} from the rows the file prints for users it gave a random password."""
    rows = (line.split("\t") for line in output.splitlines())
    return {row[0]: row[1] for row in rows if len(row) == 2 and row[0].endswith("_user")}


@pytest.fixture
def installed() -> Iterator[Installed]:
    """init.sql run as root with the auth password on stdin, jobs and notifier left to generate."""
    require_engine("mariadb")
    suffix = uuid.uuid4().hex[:10]
    names = {service: f"{service}_{suffix}" for service in SERVICES}
    auth_password = secrets.token_hex(16)
    try:
        output = run_sql(
            f"SET @auth_password = '{auth_password}';\n{suffixed(INIT_SQL.read_text(), suffix)}"
        )
        generated = generated_passwords(output)
        passwords = {"auth": auth_password}
        passwords |= {s: generated.get(f"{names[s]}_user", "") for s in ("jobs", "notifier")}
        yield Installed(names=names, passwords=passwords, output=output)
    finally:
        users = ", ".join(f"'{names[s]}_user'@'%'" for s in SERVICES)
        drops = "".join(f"DROP DATABASE IF EXISTS `{names[s]}`;" for s in SERVICES)
        run_sql(f"{drops} DROP USER IF EXISTS {users};")


def earshot(*args: str, cwd: Path, env: dict[str, str], stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "earshot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "EARSHOT_DATA_DIR": str(cwd), **FAST_ARGON2, **env},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_file_stores_no_password() -> None:
    sql = INIT_SQL.read_text()

    # every IDENTIFIED BY takes the password from the procedure's argument (a session variable)
    # (the statement text ends right after IDENTIFIED BY, and QUOTE(secret) follows).
    after = re.findall(r"IDENTIFIED\s+\w+\s+(\S+)", sql, re.IGNORECASE)
    assert after and set(after) == {"',"}, after
    assert not re.search(r"PASSWORD\s*\(\s*'", sql, re.IGNORECASE)
    assert "CREATE TABLE" not in sql.upper()  # migrations own the schema


def test_init_sql_then_migrate_gives_a_working_auth_database(
    installed: Installed, tmp_path: Path
) -> None:
    # given the databases and users made by init.sql (no table yet)
    assert set(installed.passwords["jobs"]) and set(installed.passwords["notifier"])
    for service in SERVICES:
        tables = run_sql(f"SHOW TABLES FROM `{installed.names[service]}`;")
        assert tables.strip() == ""

    # when `earshot migrate` and `earshot user add` run as those users
    env = {
        "EARSHOT_AUTH_DATABASE_URL": installed.url("auth"),
        "EARSHOT_JOBS_DATABASE_URL": installed.url("jobs"),
        "EARSHOT_NOTIFIER_DATABASE_URL": installed.url("notifier"),
    }
    earshot("migrate", cwd=tmp_path, env=env)
    added = earshot(
        "user", "add", "Georgio@Email.com", "--password-stdin",
        cwd=tmp_path, env=env, stdin="Admin123\n",
    )  # fmt: skip

    # then the course's inspection commands show the users table, as the auth user
    auth_db, auth_user = installed.names["auth"], installed.user("auth")
    seen = run_sql(
        f"show databases; use {auth_db}; show tables; describe users; "
        "select email, is_admin from users;",
        user=auth_user,
        password=installed.passwords["auth"],
    )
    assert added.strip() == "user georgio@email.com created"
    assert {auth_db, "users", "alembic_version_auth", "email", "password_hash"} <= set(seen.split())
    assert "georgio@email.com\t0" in seen
    assert installed.names["jobs"] not in seen  # it sees its own database only


async def test_the_user_signs_in_through_the_auth_user_connection(
    installed: Installed, tmp_path: Path
) -> None:
    env = {"EARSHOT_AUTH_DATABASE_URL": installed.url("auth")}
    earshot("migrate", cwd=tmp_path, env=env)
    earshot("user", "add", "ada@example.com", "--password-stdin", cwd=tmp_path, env=env,
            stdin="correct horse battery\n")  # fmt: skip
    settings = AuthSettings(_env_file=None, argon2_time_cost=1, argon2_memory_kib=256)

    engine = create_engine(installed.url("auth"))
    try:
        async with session_factory(engine)() as session:
            user = await authenticate(
                session,
                email="ADA@example.com",
                password="correct horse battery",
                passwords=Passwords.from_settings(settings),
            )
    finally:
        await engine.dispose()

    assert user is not None and user.email == "ada@example.com"


def test_each_user_reaches_from_any_host_its_own_database_only(installed: Installed) -> None:
    auth_user, password = installed.user("auth"), installed.passwords["auth"]

    hosts = run_sql(
        f"SELECT Host FROM mysql.user WHERE User IN "
        f"({', '.join(repr(installed.user(s)) for s in SERVICES)});"
    )
    grants = run_sql("SHOW GRANTS;", user=auth_user, password=password)
    elsewhere = run_sql(
        f"USE {installed.names['jobs']};", user=auth_user, password=password, check=False
    )
    create_db = run_sql(
        f"CREATE DATABASE {installed.names['auth']}_x;",
        user=auth_user,
        password=password,
        check=False,
    )

    assert hosts.split()[1:] == ["%", "%", "%"]
    assert f"ON `{installed.names['auth']}`.*" in grants
    assert "ON *.*" in grants and "GRANT USAGE ON *.*" in grants  # nothing global beyond login
    assert "ALL PRIVILEGES" not in grants and "WITH GRANT OPTION" not in grants
    assert "Access denied" in elsewhere and "Access denied" in create_db


def test_running_the_file_again_keeps_data_and_passwords(
    installed: Installed, tmp_path: Path
) -> None:
    # given a migrated auth database with a user
    env = {"EARSHOT_AUTH_DATABASE_URL": installed.url("auth")}
    earshot("migrate", cwd=tmp_path, env=env)
    earshot("user", "add", "ada@example.com", "--password-stdin", cwd=tmp_path, env=env,
            stdin="correct horse battery\n")  # fmt: skip
    suffix = installed.names["auth"].split("_", 1)[1]

    # when the file runs again, with no password given
    again = run_sql(suffixed(INIT_SQL.read_text(), suffix))

    # then nothing was generated, and the users connect with their passwords to their data
    assert generated_passwords(again) == {}
    count = run_sql(
        f"SELECT COUNT(*) FROM {installed.names['auth']}.users;",
        user=installed.user("auth"),
        password=installed.passwords["auth"],
    )
    assert count.split() == ["COUNT(*)", "1"]
