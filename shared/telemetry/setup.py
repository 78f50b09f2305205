"""OpenTelemetry configured once per process, from the environment the way Azure documents it:

- Application Insights (`azure-monitor-opentelemetry`) when APPLICATIONINSIGHTS_CONNECTION_STRING
  is set (APPLICATIONINSIGHTS_AUTHENTICATION_STRING selects keyless Entra ID auth);
- OTLP over HTTP when an OTEL_EXPORTER_OTLP_* endpoint is set or OTEL_TRACES_EXPORTER names otlp;
- the console (stderr) with OTEL_TRACES_EXPORTER=console (and OTEL_METRICS_EXPORTER=console);
- off otherwise: the API's no-op tracer and meter, which cost nothing.

A provider already installed (the Functions Python worker installs one when
PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true, before it imports the app) is used as it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Literal

from opentelemetry import metrics, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

log = logging.getLogger(__name__)

SCOPE = "rlm"
DEFAULT_SERVICE_NAME = "rlm"
OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
Mode = Literal["azure-monitor", "otlp", "console", "existing", "off"]

_lock = threading.Lock()
_mode: Mode | None = None


def configure() -> Mode:
    """Set up exporters from the environment, once per process; says which it chose."""
    global _mode
    with _lock:
        if _mode is None:
            _mode = _install()
            log.info("OpenTelemetry: %s", _mode)
        return _mode


def _install() -> Mode:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "off"
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return "existing"
    if env.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        from azure.monitor.opentelemetry import configure_azure_monitor  # heavy: only when it is used

        configure_azure_monitor(resource=_resource(), **_sampling())
        return "azure-monitor"
    named = {name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", "").split(",")}
    if "otlp" in named or any(env.get(name) for name in OTLP_ENDPOINTS):
        _install_otlp()
        return "otlp"
    if "console" in named:
        _install_console(metrics_too=env.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "console")
        return "console"
    return "off"


def _sampling() -> dict[str, float]:
    """Every trace, unless OTEL_TRACES_SAMPLER says otherwise. The distro's own default (since
    1.8.3) is a rate-limited sampler at 5 traces per second, which drops spans of a tree that
    fans out in a burst; a ratio sampler keeps or drops whole traces by their trace id."""
    return {} if os.environ.get("OTEL_TRACES_SAMPLER") else {"sampling_ratio": 1.0}


def _resource() -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES if set, else service.name `rlm`."""
    if os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        return Resource.create()
    return Resource.create({SERVICE_NAME: DEFAULT_SERVICE_NAME})


def _install_otlp() -> None:
    """Traces and metrics to the OTLP/HTTP endpoint the standard OTEL_EXPORTER_OTLP_* variables name."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = _resource()
    provider = TracerProvider(resource=resource, id_generator=ChosenIds())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(
        MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
    )


def _install_console(*, metrics_too: bool) -> None:
    """Spans (and metrics) as JSON on stderr, so `ask --json` keeps stdout to itself."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    resource = _resource()
    provider = TracerProvider(resource=resource, id_generator=ChosenIds())
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    trace.set_tracer_provider(provider)
    if metrics_too:
        reader = PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr))
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


class _Chosen:
    def __init__(self, trace_id: int, span_id: int) -> None:
        self.trace_id = trace_id
        self.span_id = span_id


_chosen: ContextVar[_Chosen | None] = ContextVar("rlm_chosen_span_ids", default=None)


class ChosenIds(IdGenerator):
    """Random ids, except for a span started inside `chosen_ids`: a (sub-)query's span is
    emitted when it ends, under the id its steps already named as their parent."""

    def __init__(self, fallback: IdGenerator | None = None) -> None:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        self.fallback = fallback or RandomIdGenerator()

    def generate_span_id(self) -> int:
        chosen = _chosen.get()
        return chosen.span_id if chosen is not None else self.fallback.generate_span_id()

    def generate_trace_id(self) -> int:
        chosen = _chosen.get()
        return chosen.trace_id if chosen is not None else self.fallback.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return self.fallback.is_trace_id_random()


@contextlib.contextmanager
def chosen_ids(trace_id: int, span_id: int) -> Iterator[None]:
    """Spans started in this block get these ids (start exactly one)."""
    token = _chosen.set(_Chosen(trace_id, span_id))
    try:
        yield
    finally:
        _chosen.reset(token)


_tracer_of: tuple[object, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """The RLM's tracer on the current provider. An SDK provider someone else built (the Functions
    worker's, a test's) gets chosen ids first: its tracers read the generator when they are made."""
    global _tracer_of
    provider = trace.get_tracer_provider()
    cached = _tracer_of
    if cached is not None and cached[0] is provider:
        return cached[1]
    with _lock:
        if isinstance(provider, TracerProvider) and not isinstance(provider.id_generator, ChosenIds):
            provider.id_generator = ChosenIds(provider.id_generator)
        made = provider.get_tracer(SCOPE)
        _tracer_of = (provider, made)
    return made

