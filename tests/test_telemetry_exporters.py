"""The exporter `shared.telemetry.setup.configure()` picks from the environment, for `console` and
`off`. Providers are process-global and set once, so each case runs in a fresh interpreter that
configures telemetry as `function_app.py` does, then emits one model call span and its metrics
through the RLM's own helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

EMIT = """
from opentelemetry import trace
from shared.models import TokenUsage
from shared.telemetry import spans
from shared.telemetry.setup import configure

mode = configure()
with spans.model_call("openai", "probe-model", "http://127.0.0.1:9/v1") as call:
    call.record("probe-model", TokenUsage(model_calls=1, prompt_tokens=40, completion_tokens=6, cached_tokens=32))
print(mode, type(trace.get_tracer_provider()).__name__, spans.tracer().start_span("probe").is_recording())
"""


def emit(**environment: str) -> subprocess.CompletedProcess[str]:
    """Run EMIT with only these telemetry variables set (none inherited from the test run)."""
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_", "PYTHON_APPLICATIONINSIGHTS_"))
    }
    env = inherited | {"PYTHONPATH": str(ROOT)} | environment
    done = subprocess.run([sys.executable, "-c", EMIT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON documents the console exporters wrote one after another (other text skipped)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) != -1:
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at += 1
            continue
        found.append(value)
    return found


def test_console_writes_each_span_to_stderr_and_keeps_stdout_clean() -> None:
    done = emit(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="rlm-console-probe")
    assert done.stdout.split() == ["console", "TracerProvider", "True"]  # stdout stays the command's own
    (span,) = [o for o in json_objects(done.stderr) if o.get("name") == "chat probe-model"]
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["attributes"]["gen_ai.operation.name"] == "chat"
    assert span["attributes"]["gen_ai.request.model"] == "probe-model"
    assert span["attributes"]["gen_ai.usage.input_tokens"] == 40
    assert span["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 32
    assert span["resource"]["attributes"]["service.name"] == "rlm-console-probe"


def test_console_metrics_are_written_too_when_asked_for() -> None:
    done = emit(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="console")
    exported = [
        metric
        for document in json_objects(done.stderr)
        for resource in document.get("resource_metrics", [])
        for scope in resource["scope_metrics"]
        for metric in scope["metrics"]
    ]
    tokens = next(m for m in exported if m["name"] == "rlm.model.tokens")
    by_type = {p["attributes"]["gen_ai.token.type"]: p["value"] for p in tokens["data"]["data_points"]}
    assert by_type == {"input": 40, "output": 6, "cached": 32}


@pytest.mark.parametrize(
    "environment",
    [{}, {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}],
    ids=["nothing-set", "sdk-disabled"],
)
def test_off_exports_nothing(environment: dict[str, str]) -> None:
    done = emit(**environment)
    # The API's proxy provider and non-recording spans: nothing is kept, so nothing can be sent.
    assert done.stdout.split() == ["off", "ProxyTracerProvider", "False"]
    assert done.stderr == ""
