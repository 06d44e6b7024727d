"""The README stays true: its settings table is the one the settings classes generate."""

from __future__ import annotations

from pathlib import Path

from earshot.cli.settings_table import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def test_readme_settings_table_lists_every_setting_with_its_default() -> None:
    text = README.read_text()
    table = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == settings_table(), "README settings table is stale: run `make docs`"


def test_every_url_setting_names_its_embedded_default() -> None:
    for line in settings_table().splitlines()[2:]:
        if "_URL`" in line and "AUTH_URL" not in line and "PUBLIC_URL" not in line:
            assert "(embedded)" in line and "Empty:" in line, line
