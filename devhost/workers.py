"""Running user code the way the Python worker does.

`async def` functions run on the host's one event loop (so a shared asyncio client
can live there); plain functions run in a thread pool sized like the worker's
PYTHON_THREADPOOL_THREAD_COUNT. Activity payloads go through the real
azure.functions converters, so inputs and outputs are exactly as in Azure.
"""
from __future__ import annotations

import asyncio
import functools
import os
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter, OrchestrationTriggerConverter

from .functions import ActivityFunction, OrchestratorFunction


def default_thread_count() -> int:
    """PYTHON_THREADPOOL_THREAD_COUNT if set, else the worker's own default."""
    configured = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return min(32, (os.cpu_count() or 1) + 4)


class ActivityOutcome:
    """An activity's result text, or the reason/details of its failure."""

    def __init__(self, result: str | None = None, reason: str | None = None,
                 details: str | None = None) -> None:
        self.result = result
        self.reason = reason
        self.details = details

    @property
    def failed(self) -> bool:
        return self.reason is not None


def _user_traceback(exc: BaseException) -> str:
    """The failure's traceback without the host's and asyncio's own frames."""
    hidden = (os.path.dirname(__file__), os.path.dirname(asyncio.__file__),
              os.path.join(os.path.dirname(functools.__file__), "concurrent"))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(hidden)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(exc)
    return "Traceback (most recent call last):\n" + "".join(lines)


class Workers:
    """Owns the thread pools; coroutines run on the loop that calls `start`."""

    def __init__(self, thread_count: int | None = None) -> None:
        self.thread_count = thread_count or default_thread_count()
        self._pool = ThreadPoolExecutor(self.thread_count, thread_name_prefix="devhost-fn")
        self._episodes = ThreadPoolExecutor(2, thread_name_prefix="devhost-orch")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._episodes.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[..., Any], is_async: bool, **kwargs: Any) -> Any:
        """Call a user function: awaited on the loop if async, else on the thread pool."""
        if is_async:
            return await fn(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, **kwargs))

    async def run_activity(self, activity: ActivityFunction | None, name: str,
                           input_text: str | None) -> ActivityOutcome:
        """Decode the input as the worker does, run the activity, encode its result."""
        if activity is None:
            return ActivityOutcome(reason=f"The function '{name}' doesn't exist, is disabled, "
                                          "or is not an activity function.")
        try:
            value = ActivityTriggerConverter.decode(
                meta.Datum(type="json", value=input_text), trigger_metadata=None)
            result = await self.call(activity.fn, activity.is_async,
                                     **{activity.input_name: value})
            encoded = ActivityTriggerConverter.encode(result, expected_type=None)
            return ActivityOutcome(result=encoded.value)
        except Exception as exc:  # noqa: BLE001 - any user failure becomes TaskFailed
            return ActivityOutcome(
                reason=f"Activity function '{name}' failed: {type(exc).__name__}: {exc}",
                details=_user_traceback(exc))

    async def run_episode(self, orchestrator: OrchestratorFunction,
                          context_json: str) -> tuple[str | None, BaseException | None]:
        """One orchestrator episode off the loop; returns the reply or the raised error."""
        def invoke() -> tuple[str | None, BaseException | None]:
            context = OrchestrationTriggerConverter.decode(
                meta.Datum(type="json", value=context_json), trigger_metadata=None)
            try:
                return orchestrator.handler(context), None
            except Exception as exc:  # noqa: BLE001 - the SDK reports failures by raising
                return None, exc

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._episodes, invoke)
