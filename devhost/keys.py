"""Function keys, as the Functions host keeps them: a master key, host function keys and
the Durable extension's system key.

The devhost creates them once per state dir (`keys.json`, readable only by its owner)
and reads them back on every start, so links printed yesterday still work. Edit the
file to choose your own values, or set DEVHOST_FUNCTION_KEY / DEVHOST_SYSTEM_KEY (for
example in local.settings.json `Values`) to override the default function key and the
Durable system key.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from .errors import StartError

DURABLE_SYSTEM_KEY = "durabletask_extension"
KEYS_FILE = "keys.json"


def _new_key() -> str:
    return secrets.token_urlsafe(40)


class HostKeys(BaseModel):
    """The shape `az functionapp keys list` prints, so the same names mean the same thing."""

    master_key: str = Field(default_factory=_new_key, alias="masterKey", min_length=16)
    function_keys: dict[str, str] = Field(default_factory=lambda: {"default": _new_key()}, alias="functionKeys")
    system_keys: dict[str, str] = Field(default_factory=lambda: {DURABLE_SYSTEM_KEY: _new_key()}, alias="systemKeys")

    model_config = {"populate_by_name": True}

    @property
    def system_key(self) -> str:
        return self.system_keys[DURABLE_SYSTEM_KEY]

    @property
    def function_key(self) -> str:
        return self.function_keys["default"]

    def allows(self, level: str, presented: str | None) -> bool:
        """Whether a key presented with a request opens a function of this auth level.

        anonymous needs nothing; function takes a function key or the master key; admin
        and the Durable system routes ("system") take only their own key or the master key.
        """
        if level == "anonymous":
            return True
        if not presented:
            return False
        if secrets.compare_digest(presented, self.master_key):
            return True
        if level == "function":
            return any(secrets.compare_digest(presented, k) for k in self.function_keys.values())
        if level == "system":
            return secrets.compare_digest(presented, self.system_key)
        return False

    @classmethod
    def load_or_create(cls, state_dir: Path, environ: dict[str, str] | None = None) -> HostKeys:
        keys = cls._stored(Path(state_dir) / KEYS_FILE)
        env = os.environ if environ is None else environ
        if env.get("DEVHOST_FUNCTION_KEY"):
            keys.function_keys["default"] = env["DEVHOST_FUNCTION_KEY"]
        if env.get("DEVHOST_SYSTEM_KEY"):
            keys.system_keys[DURABLE_SYSTEM_KEY] = env["DEVHOST_SYSTEM_KEY"]
        return keys

    @classmethod
    def _stored(cls, path: Path) -> HostKeys:
        if path.is_file():
            try:
                keys = cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, ValidationError) as exc:
                raise StartError(f"{path} is not a valid keys file: {exc}") from None
            if DURABLE_SYSTEM_KEY in keys.system_keys and "default" in keys.function_keys:
                return keys
            keys.system_keys.setdefault(DURABLE_SYSTEM_KEY, _new_key())
            keys.function_keys.setdefault("default", _new_key())
        else:
            keys = cls()
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(keys.model_dump_json(by_alias=True, indent=2))
        return keys
