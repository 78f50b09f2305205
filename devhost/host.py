"""EmbeddedHost: the public face of the devhost, used by the CLI, the tests and benches.

It composes the parts and owns their lifetimes; nothing below imports it. A host holds
its state dir exclusively, resumes unfinished work when it starts (all of it, or only
the instance trees it was asked about), and serves the Durable RPC endpoint on loopback;
`serve()` adds the public listener with the app's HTTP triggers.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import azure.functions as func
from aiohttp import web

from .config import HostConfig
from .control import InstanceControl, Outcome
from .durable_api import DurableApi
from .engine import Engine
from .functions import FunctionIndex, QueueFunction, discover
from .http_server import Triggers, listen, public_app, rpc_app
from .invocation import QueueMessageData, TriggerCall, TriggerResult
from .keys import HostKeys
from .links import client_binding
from .queues import QueuePump
from .state import InstanceQuery, StateStore
from .statelock import StateDirLock
from .status import InstanceStatus
from .workers import InProcessRunner, ProcessRunner, Runner, app_spec, load_app

StatusCallback = Callable[[InstanceStatus], Awaitable[None] | None]


class EmbeddedHost:
    """Runs a Functions app in-process as the Durable extension runs an out-of-process app.

    `app` is the app object or its `module:attribute`. `resume=None` resumes every
    unfinished instance at start; a list of ids resumes only those trees. Without a
    `config`, host.json is not read but the worker settings of the environment apply.
    `pump_queues`
    feeds queue triggers; `enforce_keys` makes function-level HTTP triggers demand a key
    (the Durable webhooks always demand the system key).
    """

    def __init__(self, app: func.FunctionRegister | str, state_dir: Path, config: HostConfig | None = None, *,
                 thread_count: int | None = None, process_count: int | None = None,
                 resume: Iterable[str] | None = None, pump_queues: bool = True, enforce_keys: bool = False) -> None:
        self.app = load_app(app) if isinstance(app, str) else app
        self.config = (config or HostConfig.load(None)).model_copy(update={
            k: v for k, v in (("thread_count", thread_count), ("process_count", process_count)) if v is not None})
        self.index: FunctionIndex = discover(self.app)
        self.state_dir = Path(state_dir)
        self.store = StateStore(self.state_dir)
        self.runner: Runner = InProcessRunner(self.index, self.config.thread_count)
        if self.config.process_count > 1:
            spec = app if isinstance(app, str) else app_spec(self.app)
            self.runner = ProcessRunner(spec, self.config.process_count, self.config.thread_count)
        self.engine = Engine(self.index, self.store, self.runner, self.config)
        self.engine.client_binding = self.client_binding
        self.control = InstanceControl(self.engine)
        self.queues = QueuePump(self.store, self.index.queues, self.config.queues, self._deliver_queue)
        self.keys: HostKeys | None = None
        self._lock = StateDirLock(self.state_dir)
        self._resume = None if resume is None else list(resume)
        self._pump_queues = pump_queues
        self._enforce_keys = enforce_keys
        self.base_url = ""
        self.public_url = ""
        self._rpc: web.AppRunner | None = None
        self._started = False

    async def __aenter__(self) -> EmbeddedHost:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def durable_api(self) -> DurableApi:
        assert self.keys is not None, "start the host first"
        return DurableApi(self.control, self.config, self.keys)

    async def start(self) -> None:
        """Take the state dir, start the workers and the RPC listener, resume work."""
        if self._started:
            return
        self._lock.acquire()
        try:
            self.keys = HostKeys.load_or_create(self.state_dir)
            await self.runner.start()
            self._rpc, self.base_url = await listen(rpc_app(self.durable_api, self.config), "127.0.0.1", 0)
        except BaseException:
            self._lock.release()
            raise
        self._started = True
        self.engine.resume(self._resume)
        if self._pump_queues:
            self.queues.start()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.queues.stop()
        await self.engine.stop()
        if self._rpc is not None:
            await self._rpc.cleanup()
        await self.runner.stop()
        await _close_durable_http_session()
        self.store.close()
        self._lock.release()

    def client_binding(self) -> str:
        """The durableClient binding JSON handed to functions."""
        assert self.keys is not None
        return client_binding(self.base_url, self.public_url or self.base_url, self.config.hub_name,
                              self.keys.system_key)

    async def invoke(self, call: TriggerCall) -> TriggerResult:
        """Run an HTTP or queue function, then send its queue outputs."""
        result = await self.runner.trigger(call)
        for queue, messages in result.outputs.items():
            for message in messages:
                self.queues.enqueue(queue, message)
        return result

    async def _deliver_queue(self, function: QueueFunction, data: QueueMessageData) -> str | None:
        binding = self.client_binding() if function.client_param else None
        return (await self.invoke(TriggerCall(function.name, data, binding))).error

    # ---- orchestration management ----------------------------------------------------
    async def start_new(self, orchestrator_name: str, input: Any = None, instance_id: str | None = None) -> str:
        """Start an orchestration, as `client.start_new` does."""
        return self.start_new_text(orchestrator_name, None if input is None else json.dumps(input), instance_id)

    def start_new_text(self, orchestrator_name: str, input_text: str | None, instance_id: str | None = None) -> str:
        """Like start_new, with the input already JSON text (the HTTP API's form)."""
        return self.engine.start(orchestrator_name, input_text, instance_id or uuid.uuid4().hex)

    async def get_status(self, instance_id: str) -> InstanceStatus | None:
        row = self.store.get_instance(instance_id)
        return None if row is None else InstanceStatus.from_row(row)

    async def list_instances(self, query: InstanceQuery | None = None) -> list[InstanceStatus]:
        rows, _ = self.store.query_instances(query or InstanceQuery())
        return [InstanceStatus.from_row(r) for r in rows]

    async def wait_for_completion(self, instance_id: str, on_status: StatusCallback | None = None,
                                  timeout: float | None = None) -> InstanceStatus:
        """Wait until the instance is terminal; `on_status` sees each custom-status change."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        last_custom: Any = object()
        while True:
            status = await self.get_status(instance_id)
            if status is None:
                raise KeyError(f"No instance '{instance_id}'")
            if on_status is not None and status.custom_status != last_custom:
                last_custom = status.custom_status
                result = on_status(status)
                if inspect.isawaitable(result):
                    await result
            if status.is_terminal:
                return status
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"Instance '{instance_id}' is still {status.runtime_status}")
            await self.engine.wait_changed(instance_id, min(1.0, remaining or 1.0))

    async def terminate(self, instance_id: str, reason: str) -> bool:
        return self.control.terminate(instance_id, reason) is Outcome.ACCEPTED

    async def raise_event(self, instance_id: str, name: str, data: Any = None) -> bool:
        return self.control.raise_event(instance_id, name, json.dumps(data)) is Outcome.ACCEPTED

    async def suspend(self, instance_id: str, reason: str = "") -> bool:
        return self.control.suspend(instance_id, reason) is Outcome.ACCEPTED

    async def resume(self, instance_id: str, reason: str = "") -> bool:
        return self.control.resume(instance_id, reason) is Outcome.ACCEPTED

    async def rewind(self, instance_id: str, reason: str = "") -> bool:
        return self.control.rewind(instance_id, reason) is Outcome.ACCEPTED

    async def purge(self, instance_id: str) -> int:
        return 1 if self.control.purge(instance_id) is Outcome.ACCEPTED else 0

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """The persisted history events of the current execution, as sent to the SDK."""
        return [e.event for e in self.store.history(instance_id)]

    def children(self, instance_id: str) -> list[str]:
        """Sub-orchestration instance ids started by this instance."""
        return self.store.children(instance_id)

    def unfinished(self) -> list[str]:
        """Ids of every instance that has not reached a terminal state."""
        return [r.instance_id for r in self.store.list_instances(unfinished_only=True)]

    # ---- queues and HTTP -------------------------------------------------------------
    def enqueue(self, queue_name: str, message_text: str) -> int:
        """Put a message on a local queue; the bound queue trigger receives it."""
        return self.queues.enqueue(queue_name, message_text)

    def queue_messages(self, queue_name: str) -> list[str]:
        """Bodies waiting in a queue (e.g. `{queue}-poison`)."""
        return [m.body for m in self.store.queue_messages(queue_name)]

    async def serve(self, host: str = "127.0.0.1", port: int = 7071, ready: asyncio.Event | None = None) -> None:
        """Serve HTTP triggers and the Durable webhooks until cancelled, like `func start`.

        Durable clients inside functions keep using the loopback RPC endpoint; their
        management links point here.
        """
        assert self.keys is not None, "start the host first"
        triggers = Triggers(self.index.http, self.config, self.keys, self.invoke, self.client_binding,
                            self._enforce_keys)
        runner, self.public_url = await listen(public_app(self.durable_api, triggers, self.config), host, port)
        if ready is not None:
            ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.public_url = ""
            await runner.cleanup()


async def _close_durable_http_session() -> None:
    """The SDK keeps one aiohttp session per process; close it with the loop that owns it."""
    from azure.durable_functions.models.utils import http_utils

    close = getattr(http_utils, "_close_session", None)
    if close is not None:
        await close()
