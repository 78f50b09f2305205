"""Running user functions as the Python worker does, wherever the worker lives.

Everything that crosses between the host and a worker is a plain, picklable record
(the call in, the outcome out), so the same code runs in the host process (one worker)
and in each of several worker processes (FUNCTIONS_WORKER_PROCESS_COUNT > 1). Payloads
go through the real azure.functions converters, so inputs and outputs are exactly as
in Azure.
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.durable_functions import (
    ActivityTriggerConverter,
    EnitityTriggerConverter,
    OrchestrationTriggerConverter,
)
from azure.functions.queue import QueueMessage as FuncQueueMessage

from .functions import FunctionIndex, HttpFunction, TriggeredFunction, unknown_function_message


@dataclass
class ActivityOutcome:
    """An activity's result text, or how it failed."""

    result: str | None = None
    reason: str | None = None
    details: str | None = None
    error_type: str | None = None

    @property
    def failed(self) -> bool:
        return self.reason is not None


@dataclass
class HttpRequestData:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    route_params: dict[str, str]
    body: bytes


@dataclass
class QueueMessageData:
    id: str
    body: str
    dequeue_count: int
    inserted: datetime


@dataclass
class HttpResponseData:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class TriggerCall:
    """One HTTP or queue invocation: which function, its trigger, its client binding."""

    function: str
    trigger: HttpRequestData | QueueMessageData
    client_binding: str | None = None


@dataclass
class TriggerResult:
    response: HttpResponseData | None = None
    outputs: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


def _user_traceback(exc: BaseException) -> str:
    """The failure's traceback without the host's and asyncio's own frames."""
    hidden = (os.path.dirname(__file__), os.path.dirname(asyncio.__file__),
              os.path.join(os.path.dirname(functools.__file__), "concurrent"))
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(hidden)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(exc)
    return "Traceback (most recent call last):\n" + "".join(lines)


class Workers:
    """The worker's execution resources: the event loop it runs on for `async def`
    functions, a thread pool (PYTHON_THREADPOOL_THREAD_COUNT) for plain ones, and a small
    pool for orchestrator episodes, which must never wait behind user code."""

    def __init__(self, thread_count: int) -> None:
        self.thread_count = thread_count
        self._pool = ThreadPoolExecutor(thread_count, thread_name_prefix="devhost-fn")
        self._episodes = ThreadPoolExecutor(2, thread_name_prefix="devhost-orch")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._episodes.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[..., Any], is_async: bool, **kwargs: Any) -> Any:
        if is_async:
            return await fn(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, **kwargs))

    async def episode(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._episodes, fn)


async def run_activity(index: FunctionIndex, workers: Workers, name: str,
                       input_text: str | None, client_binding: str | None = None) -> ActivityOutcome:
    """Decode the input as the worker does, run the activity (with its durableClient binding,
    if it declares one), encode its result."""
    activity = index.activity(name)
    if activity is None:
        message = unknown_function_message("activity", name, list(index.activities))
        return ActivityOutcome(reason=message, error_type="ArgumentException")
    try:
        value = ActivityTriggerConverter.decode(meta.Datum(type="json", value=input_text), trigger_metadata=None)
        kwargs: dict[str, Any] = {activity.input_name: value}
        if activity.client_param is not None:
            kwargs[activity.client_param] = client_binding
        result = await workers.call(activity.fn, activity.is_async, **kwargs)
        return ActivityOutcome(result=ActivityTriggerConverter.encode(result, expected_type=None).value)
    except Exception as exc:  # noqa: BLE001 - any user failure becomes TaskFailed
        return ActivityOutcome(
            reason=f"Activity function '{activity.name}' failed: {type(exc).__name__}: {exc}",
            details=_user_traceback(exc), error_type=type(exc).__name__)


async def run_episode(index: FunctionIndex, workers: Workers, name: str,
                      context_json: str) -> tuple[str | None, str | None]:
    """One orchestrator episode off the loop: the state JSON, or the raised error's message
    (the SDK reports a failed episode by raising, with the state after `$OutOfProcData$:`)."""
    orchestrator = index.orchestrator(name)
    if orchestrator is None:
        return None, unknown_function_message("orchestrator", name, list(index.orchestrators))

    def invoke() -> tuple[str | None, str | None]:
        context = OrchestrationTriggerConverter.decode(meta.Datum(type="json", value=context_json),
                                                       trigger_metadata=None)
        try:
            return orchestrator.handler(context), None
        except Exception as exc:  # noqa: BLE001 - the SDK reports failures by raising
            return None, str(exc) or type(exc).__name__

    return await workers.episode(invoke)


async def run_entity(index: FunctionIndex, workers: Workers, name: str,
                     context_json: str) -> tuple[str | None, str | None]:
    """One batch of entity operations: the SDK's batch result JSON, or why it crashed."""
    entity = index.entity(name)
    if entity is None:
        return None, unknown_function_message("entity", name, list(index.entities))

    def invoke() -> tuple[str | None, str | None]:
        context = EnitityTriggerConverter.decode(meta.Datum(type="json", value=context_json), trigger_metadata=None)
        try:
            return entity.handler(context), None
        except Exception as exc:  # noqa: BLE001 - a crashed batch fails its operations
            return None, f"{type(exc).__name__}: {exc}"

    return await workers.call(invoke, is_async=False)


class _OutValue(func.Out[Any]):
    """An output binding slot (`func.Out[T]`) read after the call."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _InvocationContext(func.Context):
    """The `context` parameter a function may declare."""

    def __init__(self, function_name: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._local = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def thread_local_storage(self) -> threading.local:
        return self._local

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


def _trigger_value(function: TriggeredFunction, data: HttpRequestData | QueueMessageData) -> Any:
    if isinstance(data, HttpRequestData):
        return func.HttpRequest(method=data.method, url=data.url, headers=data.headers, params=data.params,
                                route_params=data.route_params, body=data.body)
    return FuncQueueMessage(id=data.id, body=data.body.encode(), dequeue_count=data.dequeue_count,
                            pop_receipt=str(data.dequeue_count), insertion_time=data.inserted)


def _response(result: Any) -> HttpResponseData:
    if result is None:
        return HttpResponseData(204, {}, b"")
    if not isinstance(result, func.HttpResponse):
        result = func.HttpResponse(str(result))
    headers = {k: v for k, v in result.headers.items() if k.lower() != "content-length"}
    if result.mimetype and "content-type" not in {k.lower() for k in headers}:
        headers["Content-Type"] = f"{result.mimetype}; charset={result.charset}"
    return HttpResponseData(result.status_code, headers, result.get_body())


def _messages(value: Any) -> list[str]:
    """A queue output accepts one message or a list of them (str, bytes or JSON)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item.decode() if isinstance(item, bytes) else item if isinstance(item, str) else json.dumps(item)
            for item in items]


async def run_trigger(index: FunctionIndex, workers: Workers, call: TriggerCall) -> TriggerResult:
    """Call a triggered function with its trigger, client and output bindings filled in."""
    function = index.triggered(call.function)
    if function is None:
        return TriggerResult(error=f"No function named '{call.function}'")
    kwargs: dict[str, Any] = {function.trigger_name: _trigger_value(function, call.trigger)}
    if function.client_param is not None:
        kwargs[function.client_param] = call.client_binding
    outputs = {name: _OutValue() for name in function.queue_outputs}
    kwargs.update(outputs)
    if function.wants_context:
        kwargs["context"] = _InvocationContext(function.name)
    try:
        result = await workers.call(function.fn, function.is_async, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the host answers 500 / retries the message
        return TriggerResult(error=f"Exception while executing function: Functions.{function.name}. "
                                   f"{type(exc).__name__}: {exc}\n{_user_traceback(exc)}")
    messages = {function.queue_outputs[name]: _messages(slot.get()) for name, slot in outputs.items()}
    response = _response(result) if isinstance(function, HttpFunction) else None
    return TriggerResult(response=response, outputs=messages)
