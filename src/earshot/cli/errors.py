"""One-line error messages on the CLI instead of tracebacks."""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError


def fail(exc: BaseException, *, code: int = 2) -> NoReturn:
    """Print `error: <one line>` to stderr and exit."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"invalid setting EARSHOT_{where.upper()}: {first.get('msg')}"
    else:
        message = str(exc) or type(exc).__name__
    typer.echo(f"error: {message.splitlines()[0]}", err=True)
    raise typer.Exit(code)
