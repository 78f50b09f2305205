"""Function app settings from local.settings.json, as `func start` loads them."""
from __future__ import annotations

import json
import os
from pathlib import Path


def load_local_settings(path: Path | str = "local.settings.json") -> dict[str, str]:
    """Copy `Values` into the environment without overriding variables already set.

    Returns the settings that were applied; a missing file applies nothing.
    """
    file = Path(path)
    if not file.is_file():
        return {}
    values = json.loads(file.read_text(encoding="utf-8")).get("Values") or {}
    applied: dict[str, str] = {}
    for key, value in values.items():
        if key not in os.environ and value is not None:
            os.environ[key] = applied[key] = str(value)
    return applied
