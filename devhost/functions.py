"""Discovery: read a DFApp's functions the way the Functions host indexes them.

The host only knows functions through `app.get_functions()`; this module turns that
list into typed records so the engine and the HTTP side never touch decorator
internals.
"""
from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"
HTTP_TRIGGER = "httpTrigger"
QUEUE_TRIGGER = "queueTrigger"
DURABLE_CLIENT = "durableClient"
QUEUE_OUTPUT = "queue"


@dataclass(frozen=True)
class OrchestratorFunction:
    """An orchestrator: `handler(context)` returns the orchestrator state JSON."""

    name: str
    handler: Callable[[Any], str]


@dataclass(frozen=True)
class ActivityFunction:
    """An activity: the user's plain or async function and its input parameter name."""

    name: str
    fn: Callable[..., Any]
    input_name: str
    is_async: bool


@dataclass(frozen=True)
class TriggeredFunction:
    """An HTTP- or queue-triggered function with the bindings the host must supply."""

    name: str
    fn: Callable[..., Any]
    trigger_name: str
    is_async: bool
    client_param: str | None
    queue_outputs: dict[str, str] = field(default_factory=dict)
    wants_context: bool = False


@dataclass(frozen=True)
class HttpFunction(TriggeredFunction):
    """An HTTP trigger as `func start` serves it under /api/{route}."""

    route: str = ""
    methods: tuple[str, ...] = ()
    auth_level: str = "function"


@dataclass(frozen=True)
class QueueFunction(TriggeredFunction):
    """A queue trigger bound to one queue name."""

    queue_name: str = ""


@dataclass
class FunctionIndex:
    """Everything the host found in the app, by kind and name."""

    orchestrators: dict[str, OrchestratorFunction] = field(default_factory=dict)
    activities: dict[str, ActivityFunction] = field(default_factory=dict)
    http: list[HttpFunction] = field(default_factory=list)
    queues: dict[str, QueueFunction] = field(default_factory=dict)
    client_functions: dict[str, Callable[..., Any]] = field(default_factory=dict)


def _value(raw: Any) -> str:
    """Enum members (AuthLevel, HttpMethod) and plain strings alike, as text."""
    return str(getattr(raw, "value", raw))


def _common(function: func.FunctionBuilder | Any) -> dict[str, Any]:
    """Fields shared by HTTP and queue triggers: client binding, outputs, sync/async."""
    fn = function.get_user_function()
    trigger = function.get_trigger()
    client_param = None
    queue_outputs: dict[str, str] = {}
    for binding in function.get_bindings():
        if binding.type == DURABLE_CLIENT:
            client_param = binding.name
        elif binding.type == QUEUE_OUTPUT and _value(binding.direction) in ("1", "OUT"):
            queue_outputs[binding.name] = binding.queue_name
    original = getattr(fn, "client_function", fn)
    params = inspect.signature(original).parameters
    return {
        "name": function.get_function_name(),
        "fn": fn,
        "trigger_name": trigger.name,
        "is_async": inspect.iscoroutinefunction(fn),
        "client_param": client_param,
        "queue_outputs": queue_outputs,
        "wants_context": "context" in params,
    }


_indexed: weakref.WeakKeyDictionary[Any, FunctionIndex] = weakref.WeakKeyDictionary()


def discover(app: func.FunctionRegister) -> FunctionIndex:
    """Index the app's functions by trigger type, as the Functions host does at start.

    The SDK allows `get_functions()` once per app (a second call reports every name as a
    duplicate), as the worker indexes once per process; later hosts reuse the index.
    """
    if app not in _indexed:
        _indexed[app] = _index(app)
    return _indexed[app]


def _index(app: func.FunctionRegister) -> FunctionIndex:
    index = FunctionIndex()
    for function in app.get_functions():
        trigger = function.get_trigger()
        name = function.get_function_name()
        fn = function.get_user_function()
        if trigger.type == ORCHESTRATION_TRIGGER:
            index.orchestrators[name] = OrchestratorFunction(name, fn)
        elif trigger.type == ACTIVITY_TRIGGER:
            index.activities[name] = ActivityFunction(
                name, fn, trigger.name, inspect.iscoroutinefunction(fn))
        elif trigger.type == HTTP_TRIGGER:
            methods = tuple(_value(m).upper() for m in (trigger.methods or ()))
            index.http.append(HttpFunction(
                **_common(function), route=trigger.route or name, methods=methods,
                auth_level=_value(trigger.auth_level).lower()))
        elif trigger.type == QUEUE_TRIGGER:
            index.queues[trigger.queue_name] = QueueFunction(
                **_common(function), queue_name=trigger.queue_name)
        if hasattr(fn, "client_function"):
            index.client_functions[name] = fn.client_function
    return index
