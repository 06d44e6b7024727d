"""The settings table in the README, generated from the settings classes themselves."""

from __future__ import annotations

from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from earshot.common.settings import CommonSettings


def _service_settings() -> dict[str, type[CommonSettings]]:
    from earshot.auth.settings import AuthSettings
    from earshot.converter.settings import ConverterSettings
    from earshot.gateway.settings import GatewaySettings
    from earshot.notifier.settings import NotifierSettings

    return {
        "auth": AuthSettings,
        "gateway": GatewaySettings,
        "converter": ConverterSettings,
        "notifier": NotifierSettings,
    }


def _default(field: FieldInfo) -> str:
    value: Any = field.default
    if value is PydanticUndefined or value is None:
        return "—"
    if value == "":
        return "(embedded)"
    return f"`{value}`"


def settings_table() -> str:
    """A markdown table: variable, default, services that read it, description."""
    readers: dict[str, list[str]] = {}
    fields: dict[str, FieldInfo] = {}
    for service, cls in _service_settings().items():
        for name, field in cls.model_fields.items():
            fields.setdefault(name, field)
            readers.setdefault(name, []).append(service)
    common = set(CommonSettings.model_fields)
    order = [n for n in CommonSettings.model_fields] + sorted(set(fields) - common)
    lines = [
        "| variable | default | read by | what it is |",
        "|---|---|---|---|",
    ]
    for name in order:
        field = fields[name]
        who = "all" if len(readers[name]) == 4 else ", ".join(readers[name])
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `EARSHOT_{name.upper()}` | {_default(field)} | {who} | {description} |")
    return "\n".join(lines)
