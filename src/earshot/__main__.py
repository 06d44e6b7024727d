"""`python -m earshot` is the `earshot` command."""

from earshot.cli.main import app

app()
