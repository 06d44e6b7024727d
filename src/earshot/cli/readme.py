"""Rewrite the generated parts of README.md (`make docs`)."""

from __future__ import annotations

import sys
from pathlib import Path

from earshot.cli.settings_table import settings_table

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def update_readme(path: Path) -> bool:
    """Put the current settings table between the markers; True when the file changed."""
    text = path.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{settings_table()}\n{END}{tail}"
    if updated == text:
        return False
    path.write_text(updated)
    return True


if __name__ == "__main__":
    changed = update_readme(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
    sys.stderr.write("README.md updated\n" if changed else "README.md already up to date\n")
