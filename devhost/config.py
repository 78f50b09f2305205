"""Host settings: what `func start` reads from host.json and the worker's app settings.

One model for every knob the devhost honours, with the extension's defaults, so the
engine, the queue pump and the HTTP server never read files or the environment.
"""
from __future__ import annotations

import json
import logging
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

log = logging.getLogger("devhost.config")

DEFAULT_HUB = "TestHubName"
#: The Functions HTTP limits: request bodies up to 100 MB, URLs up to 4 KB.
MAX_REQUEST_BYTES = 100 * 1024 * 1024
MAX_URL_BYTES = 4096
_SETTING = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d{2}):(\d{2})(?:\.(\d+))?$")


class HostConfigError(ValueError):
    """host.json (or a worker setting) cannot be used; the message says which value."""


def parse_timespan(text: str) -> timedelta:
    """A .NET TimeSpan as host.json writes it: `[d.]hh:mm:ss[.fff]`."""
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a time span like 00:00:30")
    days, hours, minutes, seconds, fraction = match.groups()
    return timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=int(seconds),
                     microseconds=int((fraction or "0").ljust(6, "0")[:6]))


class QueueSettings(BaseModel):
    """`extensions.queues`, with the Functions defaults."""

    batch_size: int = Field(16, alias="batchSize", ge=1, le=32)
    new_batch_threshold: int | None = Field(None, alias="newBatchThreshold", ge=0)
    max_dequeue_count: int = Field(5, alias="maxDequeueCount", ge=1)
    visibility_timeout: timedelta = Field(timedelta(0), alias="visibilityTimeout")
    max_polling_interval: timedelta = Field(timedelta(minutes=1), alias="maxPollingInterval")

    model_config = {"populate_by_name": True}

    @field_validator("visibility_timeout", "max_polling_interval", mode="before")
    @classmethod
    def _timespan(cls, value: Any) -> Any:
        return parse_timespan(value) if isinstance(value, str) else value

    @property
    def concurrency(self) -> int:
        """Messages one queue function handles at once: a batch plus the refill threshold."""
        threshold = self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold
        return self.batch_size + threshold


class HostConfig(BaseModel):
    """The settings of one host; build it with `HostConfig.load` or directly in tests."""

    hub_name: str = DEFAULT_HUB
    max_concurrent_activities: int = Field(default_factory=lambda: 10 * (os.cpu_count() or 1), ge=1)
    max_concurrent_orchestrators: int = Field(default_factory=lambda: 10 * (os.cpu_count() or 1), ge=1)
    max_concurrent_entities: int = Field(default_factory=lambda: 10 * (os.cpu_count() or 1), ge=1)
    http_poll_interval: timedelta = timedelta(milliseconds=30000)
    replace_running_instances: bool = True
    route_prefix: str = "api"
    queues: QueueSettings = Field(default_factory=QueueSettings)
    process_count: int = Field(1, ge=1, le=10)
    thread_count: int = Field(default_factory=lambda: min(32, (os.cpu_count() or 1) + 4), ge=1)
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_url_bytes: int = MAX_URL_BYTES

    @classmethod
    def load(cls, app_dir: Path | str | None = ".", environ: dict[str, str] | None = None,
             **overrides: Any) -> HostConfig:
        """host.json of `app_dir` (None: no host.json) plus FUNCTIONS_WORKER_PROCESS_COUNT
        and PYTHON_THREADPOOL_THREAD_COUNT; keyword overrides win (e.g. a CLI flag)."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        path = Path(app_dir or ".") / "host.json"
        if app_dir is not None and path.is_file():
            values.update(_from_host_json(path, env))
        for variable, key in (("FUNCTIONS_WORKER_PROCESS_COUNT", "process_count"),
                              ("PYTHON_THREADPOOL_THREAD_COUNT", "thread_count")):
            raw = env.get(variable, "").strip()
            if raw:
                if not raw.isdigit() or int(raw) < 1:
                    raise HostConfigError(f"{variable} must be a positive whole number, not '{raw}'")
                values[key] = int(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise HostConfigError(f"{path}: {problems}") from None


def _from_host_json(path: Path, env: dict[str, str]) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise HostConfigError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise HostConfigError(f"{path} must hold a JSON object")
    extensions = document.get("extensions") or {}
    durable = extensions.get("durableTask") or {}
    values: dict[str, Any] = {}
    if "hubName" in durable:
        values["hub_name"] = _resolve_hub(str(durable["hubName"]), env)
    for source, key in (("maxConcurrentActivityFunctions", "max_concurrent_activities"),
                        ("maxConcurrentOrchestratorFunctions", "max_concurrent_orchestrators"),
                        ("maxConcurrentEntityFunctions", "max_concurrent_entities")):
        if source in durable:
            values[key] = durable[source]
    sleep = (durable.get("httpSettings") or {}).get("defaultAsyncRequestSleepTimeMilliseconds")
    if sleep is not None:
        values["http_poll_interval"] = timedelta(milliseconds=int(sleep))
    overridable = str(durable.get("overridableExistingInstanceStates", "AnyState"))
    values["replace_running_instances"] = overridable.lower() != "nonrunningstates"
    if "queues" in extensions:
        values["queues"] = extensions["queues"]
    http = extensions.get("http") or {}
    if "routePrefix" in http:
        values["route_prefix"] = str(http["routePrefix"]).strip("/")
    return values


def _resolve_hub(raw: str, env: dict[str, str]) -> str:
    """`%SETTING%` references resolve from app settings, as the host does."""
    missing: list[str] = []

    def setting(match: re.Match[str]) -> str:
        value = env.get(match.group(1))
        if value is None:
            missing.append(match.group(1))
            return ""
        return value

    resolved = _SETTING.sub(setting, raw)
    if missing or not resolved:
        log.info("host.json hubName '%s' does not resolve (set %s); using '%s'",
                    raw, ", ".join(missing) or "a value", DEFAULT_HUB)
        return DEFAULT_HUB
    return resolved
