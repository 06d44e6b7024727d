"""Entry point of the `earshot` command."""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError

from earshot.cli.deadletters import app as dead_letters_app
from earshot.cli.errors import fail
from earshot.cli.supervisor import Supervisor, service_command
from earshot.common.logging import configure_logging
from earshot.common.settings import SettingsError

app = typer.Typer(
    name="earshot",
    help="earshot: video to audio conversion service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(dead_letters_app, name="dead-letters")


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """earshot: video to audio conversion service."""
    # Operator commands log warnings only; services configure their own logging when they start.
    configure_logging(service="cli", level="info" if verbose else "warning", fmt="console")


class Service(StrEnum):
    auth = "auth"
    gateway = "gateway"
    converter = "converter"
    notifier = "notifier"


@app.command()
def serve(service: Annotated[Service, typer.Argument(help="The service to run.")]) -> None:
    """Run one service in the foreground until SIGTERM or Ctrl-C."""
    try:
        _run_service(service)
    except (SettingsError, ValidationError) as exc:
        fail(exc)


def _run_service(service: Service) -> None:
    if service is Service.auth:
        from earshot.auth.main import run as run_auth
        from earshot.auth.settings import AuthSettings

        run_auth(AuthSettings())
    elif service is Service.gateway:
        from earshot.gateway.main import run as run_gateway
        from earshot.gateway.settings import GatewaySettings

        run_gateway(GatewaySettings())
    elif service is Service.converter:
        from earshot.converter.main import run as run_converter
        from earshot.converter.settings import ConverterSettings

        run_converter(ConverterSettings())
    else:
        from earshot.notifier.main import run as run_notifier
        from earshot.notifier.settings import NotifierSettings

        run_notifier(NotifierSettings())


@app.command()
def migrate() -> None:
    """Apply every service's database migrations (idempotent)."""
    try:
        asyncio.run(_migrate_all())
    except (SettingsError, ValidationError) as exc:
        fail(exc)
    typer.echo("migrations applied: auth, jobs, notifier")


async def _migrate_all() -> None:
    from earshot.auth.main import prepare as prepare_auth
    from earshot.auth.settings import AuthSettings
    from earshot.gateway.main import prepare as prepare_gateway
    from earshot.gateway.settings import GatewaySettings
    from earshot.notifier.main import prepare as prepare_notifier
    from earshot.notifier.settings import NotifierSettings

    await prepare_auth(AuthSettings())
    await prepare_gateway(GatewaySettings())
    await prepare_notifier(NotifierSettings())


@app.command()
def up(
    converters: Annotated[
        int, typer.Option(min=1, max=32, help="How many converter processes to run.")
    ] = 1,
) -> None:
    """Migrate, create the first admin if there is none, and run all four services until Ctrl-C."""
    from earshot.auth.settings import AuthSettings
    from earshot.auth.users import ensure_admin
    from earshot.gateway.settings import GatewaySettings

    try:
        asyncio.run(_migrate_all())
        auth_settings = AuthSettings()
        gateway_settings = GatewaySettings()
        generated_password = asyncio.run(ensure_admin(auth_settings))
    except (SettingsError, ValidationError) as exc:
        fail(exc)
    configure_logging(service="supervisor", level="info", fmt="auto")
    _print_banner(auth_settings, gateway_settings, generated_password)
    commands = {
        "auth": service_command("auth"),
        "gateway": service_command("gateway"),
        "notifier": service_command("notifier"),
        **{
            f"converter-{n}" if converters > 1 else "converter": service_command("converter")
            for n in range(1, converters + 1)
        },
    }
    raise typer.Exit(Supervisor(commands).run())


def _print_banner(auth_settings: object, gateway_settings: object, password: str | None) -> None:
    from earshot.auth.settings import AuthSettings
    from earshot.gateway.settings import GatewaySettings

    assert isinstance(auth_settings, AuthSettings)
    assert isinstance(gateway_settings, GatewaySettings)
    err = sys.stderr
    base = f"http://{gateway_settings.gateway_host}:{gateway_settings.gateway_port}"
    print(f"earshot is starting; data lives in {gateway_settings.data_dir}", file=err)
    print(f"  gateway  {base}   (API docs: {base}/docs)", file=err)
    print(
        f"  auth     http://{auth_settings.auth_host}:{auth_settings.auth_port} (internal)",
        file=err,
    )
    if password:
        print(
            f"  first admin created: {auth_settings.admin_email} / {password}\n"
            "  (this password is shown once; change users with `earshot user add`)",
            file=err,
        )
    else:
        print(
            f"  sign in: curl -X POST {base}/login -u EMAIL:PASSWORD   "
            f"(admin: {auth_settings.admin_email})",
            file=err,
        )


@app.command("settings")
def show_settings() -> None:
    """Print every setting (environment variable), its default and who reads it, as markdown."""
    from earshot.cli.settings_table import settings_table

    typer.echo(settings_table())


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Argument(help="The user's email address (their login).")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user; the password is asked for, or read from standard input."""
    from earshot.auth.main import prepare
    from earshot.auth.settings import AuthSettings
    from earshot.auth.users import add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        settings = AuthSettings()
        asyncio.run(prepare(settings))
        asyncio.run(add_user(settings, email=email, password=password, is_admin=admin))
    except Exception as exc:  # every failure becomes one clear line, never a traceback
        fail(exc)
    typer.echo(f"user {email.strip().lower()} created{' (admin)' if admin else ''}")
