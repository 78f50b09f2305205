"""Where user code runs: in the host process, or in worker processes as Azure runs it.

With FUNCTIONS_WORKER_PROCESS_COUNT = 1 (the default) the one worker is the host process
itself, so `async def` functions share the host's event loop. With N > 1 the host starts
N real Python processes, each importing the app and running its own loop and thread
pool, and hands invocations to them in turn, as the Functions host spreads invocations
over its language worker channels. A worker process that dies fails the invocations it
held; activities are retried by their orchestrations as in Azure.
"""
from __future__ import annotations

import asyncio
import importlib
import itertools
import multiprocessing
import signal
import sys
import threading
from collections.abc import Awaitable
from multiprocessing.connection import Connection
from typing import Any, Protocol

import azure.functions as func

from .functions import FunctionIndex, discover
from .invocation import (
    ActivityOutcome,
    TriggerCall,
    TriggerResult,
    Workers,
    run_activity,
    run_entity,
    run_episode,
    run_trigger,
)


class WorkerLost(RuntimeError):
    """The worker process running an invocation exited; the invocation did not finish."""


class Runner(Protocol):
    """What the engine and the HTTP side need from a worker."""

    async def activity(self, name: str, input_text: str | None, client_binding: str | None = None) -> ActivityOutcome: ...
    async def episode(self, name: str, context_json: str) -> tuple[str | None, str | None]: ...
    async def entity(self, name: str, context_json: str) -> tuple[str | None, str | None]: ...
    async def trigger(self, call: TriggerCall) -> TriggerResult: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def _dispatch(index: FunctionIndex, workers: Workers, kind: str, args: tuple[Any, ...]) -> Awaitable[Any]:
    if kind == "activity":
        return run_activity(index, workers, *args)
    if kind == "episode":
        return run_episode(index, workers, *args)
    if kind == "entity":
        return run_entity(index, workers, *args)
    return run_trigger(index, workers, *args)


class InProcessRunner:
    """One worker: the host process, its loop and a thread pool."""

    def __init__(self, index: FunctionIndex, thread_count: int) -> None:
        self.index = index
        self.workers = Workers(thread_count)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.workers.shutdown()

    async def activity(self, name: str, input_text: str | None, client_binding: str | None = None) -> ActivityOutcome:
        return await run_activity(self.index, self.workers, name, input_text, client_binding)

    async def episode(self, name: str, context_json: str) -> tuple[str | None, str | None]:
        return await run_episode(self.index, self.workers, name, context_json)

    async def entity(self, name: str, context_json: str) -> tuple[str | None, str | None]:
        return await run_entity(self.index, self.workers, name, context_json)

    async def trigger(self, call: TriggerCall) -> TriggerResult:
        return await run_trigger(self.index, self.workers, call)


def app_spec(app: func.FunctionRegister) -> str:
    """`module:attribute` naming the app object, so a worker process can import it."""
    for name, module in list(sys.modules.items()):
        for attribute, value in list(vars(module).items() if module is not None else ()):
            if value is app and name != "__main__":
                return f"{name}:{attribute}"
    raise ValueError("worker processes need the app as an importable module attribute (module:app)")


def load_app(spec: str) -> func.FunctionRegister:
    """`module:attribute`, or just `module` holding one function app, as the Python worker
    finds the app in function_app.py whatever its variable is called."""
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    if attribute:
        return getattr(module, attribute)
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise AttributeError(f"{module_name} defines {len(apps)} function apps; name one as {module_name}:NAME")
    return apps[0]


def _worker_main(connection: Connection, spec: str, thread_count: int) -> None:
    """A worker process: import the app, then serve invocations until the host goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    index = discover(load_app(spec))
    workers = Workers(thread_count)
    loop = asyncio.new_event_loop()
    sending = threading.Lock()

    async def handle(request_id: int, kind: str, args: tuple[Any, ...]) -> None:
        try:
            result: Any = await _dispatch(index, workers, kind, args)
        except Exception as exc:  # noqa: BLE001 - reported to the host, never kills the worker
            result = RuntimeError(f"{type(exc).__name__}: {exc}")
        with sending:
            connection.send((request_id, result))

    def read() -> None:
        try:
            while True:
                request_id, kind, args = connection.recv()
                asyncio.run_coroutine_threadsafe(handle(request_id, kind, args), loop)
        except (EOFError, OSError):
            loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=read, name="devhost-worker-reader", daemon=True).start()
    loop.run_forever()
    workers.shutdown()


class _WorkerProcess:
    """The host's side of one worker process: a pipe and the calls waiting on it."""

    def __init__(self, context: Any, spec: str, thread_count: int, loop: asyncio.AbstractEventLoop) -> None:
        parent, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, spec, thread_count),
                                       name="devhost-worker", daemon=True)
        self.process.start()
        child.close()
        self.connection: Connection = parent
        self.loop = loop
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        self._sending = threading.Lock()
        threading.Thread(target=self._read, name="devhost-worker-results", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                request_id, result = self.connection.recv()
                self.loop.call_soon_threadsafe(self._resolve, request_id, result)
        except (EOFError, OSError):
            self.loop.call_soon_threadsafe(self._lost)

    def _resolve(self, request_id: int, result: Any) -> None:
        future = self.pending.pop(request_id, None)
        if future is not None and not future.done():
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _lost(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(WorkerLost(f"worker process {self.process.pid} exited"))
        self.pending.clear()

    @property
    def alive(self) -> bool:
        return self.process.is_alive() and not self.connection.closed

    async def call(self, kind: str, *args: Any) -> Any:
        request_id = next(self._ids)
        future = self.loop.create_future()
        self.pending[request_id] = future
        try:
            with self._sending:
                self.connection.send((request_id, kind, args))
        except OSError as exc:
            self.pending.pop(request_id, None)
            raise WorkerLost(f"worker process {self.process.pid} exited") from exc
        return await future

    def close(self) -> None:
        self.connection.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class ProcessRunner:
    """N worker processes, each invocation handed to the next one in turn."""

    def __init__(self, spec: str, count: int, thread_count: int) -> None:
        self.spec = spec
        self.count = count
        self.thread_count = thread_count
        self._processes: list[_WorkerProcess] = []
        self._turn = itertools.count()

    @property
    def pids(self) -> list[int]:
        return [p.process.pid for p in self._processes if p.process.pid is not None]

    async def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()

        def starting() -> list[_WorkerProcess]:
            return [_WorkerProcess(context, self.spec, self.thread_count, loop) for _ in range(self.count)]

        self._processes = await asyncio.to_thread(starting)

    async def stop(self) -> None:
        processes, self._processes = self._processes, []
        for process in processes:
            await asyncio.to_thread(process.close)

    def _next(self) -> _WorkerProcess:
        """The next worker in turn; one that died is replaced first, as the Functions host
        restarts a language worker that exits."""
        slot = next(self._turn) % len(self._processes)
        if not self._processes[slot].alive:
            context = multiprocessing.get_context("spawn")
            self._processes[slot] = _WorkerProcess(context, self.spec, self.thread_count, asyncio.get_running_loop())
        return self._processes[slot]

    async def activity(self, name: str, input_text: str | None, client_binding: str | None = None) -> ActivityOutcome:
        try:
            return await self._next().call("activity", name, input_text, client_binding)
        except WorkerLost as exc:
            return ActivityOutcome(reason=f"Activity function '{name}' failed: {exc}", error_type="WorkerLost")

    async def episode(self, name: str, context_json: str) -> tuple[str | None, str | None]:
        return await self._next().call("episode", name, context_json)

    async def entity(self, name: str, context_json: str) -> tuple[str | None, str | None]:
        return await self._next().call("entity", name, context_json)

    async def trigger(self, call: TriggerCall) -> TriggerResult:
        try:
            return await self._next().call("trigger", call)
        except WorkerLost as exc:
            return TriggerResult(error=str(exc))
