"""Discovery: read a DFApp's functions the way the Functions host indexes them.

The host only knows functions through `app.get_functions()`; this module turns that
list into typed records so the engine and the HTTP side never touch decorator
internals. Durable functions are named as the extension names them: by the trigger's
`orchestration=` / `activity=` / `entity=` value, else the function name, and looked up
without regard to case.
"""
from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
    """An activity: the user's plain or async function, its input parameter name, and the
    parameter of its durableClient binding when it has one (a client function may be
    triggered by an activity too)."""

    name: str
    fn: Callable[..., Any]
    input_name: str
    is_async: bool
    client_param: str | None = None


@dataclass(frozen=True)
class EntityFunction:
    """An entity: `handler(context)` runs a batch of operations, returns the batch result JSON."""

    name: str
    handler: Callable[[Any], str]


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
    """An HTTP trigger as `func start` serves it under /{routePrefix}/{route}."""

    route: str = ""
    methods: tuple[str, ...] = ()
    auth_level: str = "function"


@dataclass(frozen=True)
class QueueFunction(TriggeredFunction):
    """A queue trigger bound to one queue name."""

    queue_name: str = ""


Named = TypeVar("Named", OrchestratorFunction, ActivityFunction, EntityFunction)


def _lookup(functions: dict[str, Named], name: str) -> Named | None:
    """Durable function names compare without case, as the extension's FunctionName does."""
    found = functions.get(name)
    if found is not None:
        return found
    folded = name.casefold()
    return next((f for key, f in functions.items() if key.casefold() == folded), None)


@dataclass
class FunctionIndex:
    """Everything the host found in the app, by kind and registered name."""

    orchestrators: dict[str, OrchestratorFunction] = field(default_factory=dict)
    activities: dict[str, ActivityFunction] = field(default_factory=dict)
    entities: dict[str, EntityFunction] = field(default_factory=dict)
    http: list[HttpFunction] = field(default_factory=list)
    queues: dict[str, QueueFunction] = field(default_factory=dict)
    client_functions: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def orchestrator(self, name: str) -> OrchestratorFunction | None:
        return _lookup(self.orchestrators, name)

    def activity(self, name: str) -> ActivityFunction | None:
        return _lookup(self.activities, name)

    def entity(self, name: str) -> EntityFunction | None:
        return _lookup(self.entities, name)

    def triggered(self, name: str) -> TriggeredFunction | None:
        """An HTTP or queue function by its function name (how invocations name it)."""
        candidates: list[TriggeredFunction] = [*self.http, *self.queues.values()]
        return next((f for f in candidates if f.name == name), None)


class UnknownFunction(LookupError):
    """A start or call names no registered function; the message is the extension's."""


def unknown_function_message(kind: str, name: str, known: list[str]) -> str:
    """The extension's words for a call to a function that is not registered."""
    message = f"The function '{name}' doesn't exist, is disabled, or is not an {kind} function. Additional info: "
    if known:
        return message + f"The following are the known {kind} functions: '" + "', '".join(known) + "'."
    return message + f"No {kind} functions are currently registered!"


def _value(raw: Any) -> str:
    """Enum members (AuthLevel, HttpMethod) and plain strings alike, as text."""
    return str(getattr(raw, "value", raw))


def _client_param(function: func.FunctionBuilder | Any) -> str | None:
    return next((b.name for b in function.get_bindings() if b.type == DURABLE_CLIENT), None)


def _common(function: func.FunctionBuilder | Any) -> dict[str, Any]:
    """Fields shared by HTTP and queue triggers: client binding, outputs, sync/async."""
    fn = function.get_user_function()
    trigger = function.get_trigger()
    queue_outputs: dict[str, str] = {}
    for binding in function.get_bindings():
        if binding.type == QUEUE_OUTPUT and _value(binding.direction) in ("1", "OUT"):
            queue_outputs[binding.name] = binding.queue_name
    original = getattr(fn, "client_function", fn)
    params = inspect.signature(original).parameters
    return {
        "name": function.get_function_name(),
        "fn": fn,
        "trigger_name": trigger.name,
        "is_async": inspect.iscoroutinefunction(fn),
        "client_param": _client_param(function),
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
            durable_name = getattr(trigger, "orchestration", None) or name
            index.orchestrators[durable_name] = OrchestratorFunction(durable_name, fn)
        elif trigger.type == ACTIVITY_TRIGGER:
            durable_name = getattr(trigger, "activity", None) or name
            index.activities[durable_name] = ActivityFunction(
                durable_name, fn, trigger.name, inspect.iscoroutinefunction(fn), _client_param(function))
        elif trigger.type == ENTITY_TRIGGER:
            durable_name = getattr(trigger, "entity_name", None) or name
            index.entities[durable_name] = EntityFunction(durable_name, fn)
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
