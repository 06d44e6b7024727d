"""Converter settings: defaults, derived paths, environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from earshot.converter.settings import ConverterSettings


def test_defaults_derive_the_work_dir_from_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = ConverterSettings(data_dir=tmp_path / "var")
    assert settings.resolved_work_dir == tmp_path / "var" / "tmp" / "converter"
    assert settings.ffmpeg_path is None
    assert settings.conversion_timeout_seconds == 3600
    assert settings.converter_max_attempts == 5
    assert settings.converter_concurrency == 1
    assert settings.ffmpeg_threads == 0
    assert settings.progress_interval_seconds == 1.0


def test_environment_variables_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EARSHOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EARSHOT_WORK_DIR", str(tmp_path / "scratch"))
    monkeypatch.setenv("EARSHOT_CONVERSION_TIMEOUT_SECONDS", "12.5")
    monkeypatch.setenv("EARSHOT_CONVERTER_CONCURRENCY", "3")
    monkeypatch.setenv("EARSHOT_FFMPEG_PATH", "/opt/ffmpeg")
    settings = ConverterSettings()
    assert settings.resolved_work_dir == tmp_path / "scratch"
    assert settings.conversion_timeout_seconds == 12.5
    assert settings.converter_concurrency == 3
    assert settings.ffmpeg_path == "/opt/ffmpeg"
    assert settings.broker_url == f"sqlite:///{tmp_path / 'queue.db'}"


def test_nonsense_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError):
        ConverterSettings(converter_concurrency=0)
    with pytest.raises(ValidationError):
        ConverterSettings(conversion_timeout_seconds=0)
    with pytest.raises(ValidationError, match="MAX_ATTEMPTS"):
        ConverterSettings(converter_max_attempts=6, queue_max_deliveries=5)


def test_every_field_is_described() -> None:
    assert all(field.description for field in ConverterSettings.model_fields.values())
