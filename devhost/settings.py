"""Function app settings from local.settings.json, as `func start` loads them."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """local.settings.json cannot be used; the message is one line saying why."""


def read_local_settings(path: Path | str = "local.settings.json") -> dict[str, Any]:
    """The whole file as a dict; a missing file is empty."""
    file = Path(path)
    if not file.is_file():
        return {}
    try:
        document = json.loads(file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{file} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {file}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Values", {}), dict):
        raise SettingsError(f"{file} must be an object whose \"Values\" is an object of settings")
    return document


def load_local_settings(path: Path | str = "local.settings.json") -> dict[str, str]:
    """Copy `Values` into the environment without overriding variables already set.

    Returns the settings that were applied; a missing file applies nothing.
    """
    values = read_local_settings(path).get("Values") or {}
    applied: dict[str, str] = {}
    for key, value in values.items():
        if key not in os.environ and value is not None:
            os.environ[key] = applied[key] = str(value)
    return applied


def local_http_port(path: Path | str = "local.settings.json") -> int | None:
    """`Host.LocalHttpPort`, which `func start` listens on instead of 7071."""
    port = (read_local_settings(path).get("Host") or {}).get("LocalHttpPort")
    return int(port) if isinstance(port, int | str) and str(port).isdigit() else None
