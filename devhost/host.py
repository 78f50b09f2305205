"""EmbeddedHost: the public face of the devhost, used by the CLI and the tests."""
from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import azure.functions as func
from dateutil.parser import isoparse
from pydantic import BaseModel

from .engine import Engine
from .functions import FunctionIndex, discover
from .queues import QueuePump
from .state import TERMINAL, InstanceRow, StateStore
from .workers import Workers

StatusCallback = Callable[["InstanceStatus"], Awaitable[None] | None]


class InstanceStatus(BaseModel):
    """An orchestration instance as callers see it (payloads decoded from JSON)."""

    instance_id: str
    name: str
    runtime_status: str
    input: Any = None
    output: Any = None
    custom_status: Any = None
    created_time: datetime
    last_updated_time: datetime
    parent: str | None = None

    @classmethod
    def from_row(cls, row: InstanceRow) -> InstanceStatus:
        def load(text: str | None) -> Any:
            return None if text is None else json.loads(text)

        return cls(instance_id=row.instance_id, name=row.name, runtime_status=row.status,
                   input=load(row.input), output=load(row.output),
                   custom_status=load(row.custom_status), created_time=isoparse(row.created),
                   last_updated_time=isoparse(row.updated), parent=row.parent_id)

    @property
    def is_terminal(self) -> bool:
        return self.runtime_status in TERMINAL


class EmbeddedHost:
    """Runs a DFApp in-process as the Durable extension runs an out-of-process app."""

    def __init__(self, app: func.FunctionRegister, state_dir: Path,
                 thread_count: int | None = None, max_dequeue_count: int = 5) -> None:
        self.app = app
        self.index: FunctionIndex = discover(app)
        self.state_dir = Path(state_dir)
        self.store = StateStore(self.state_dir)
        self.workers = Workers(thread_count)
        self.engine = Engine(self.index, self.store, self.workers)
        self.queues = QueuePump(self, max_dequeue_count)
        self.base_url = ""
        self.public_url = ""
        self._rpc: Any = None
        self._started = False

    async def __aenter__(self) -> EmbeddedHost:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        """Resume every unfinished instance and every queued message from disk."""
        if self._started:
            return
        self._started = True
        from .client_api import start_server

        self._rpc, self.base_url = await start_server(self, "127.0.0.1", 0)
        self.engine.resume_all()
        self.queues.start()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.queues.stop()
        await self.engine.stop()
        await self._rpc.cleanup()
        self.workers.shutdown()
        await _close_durable_http_session()
        self.store.close()

    # ---- orchestration management ----------------------------------------------------
    async def start_new(self, orchestrator_name: str, input: Any = None,
                        instance_id: str | None = None) -> str:
        """Start an orchestration; an existing unfinished instance with that id is kept."""
        return self.start_new_text(orchestrator_name, _json_text(input), instance_id)

    def start_new_text(self, orchestrator_name: str, input_text: str | None,
                       instance_id: str | None = None) -> str:
        """Like start_new, with the input already JSON text (the HTTP API's form)."""
        return self.engine.start(orchestrator_name, input_text, instance_id or uuid.uuid4().hex)

    async def get_status(self, instance_id: str) -> InstanceStatus | None:
        row = self.store.get_instance(instance_id)
        return None if row is None else InstanceStatus.from_row(row)

    async def list_instances(self) -> list[InstanceStatus]:
        return [InstanceStatus.from_row(r) for r in self.store.list_instances()]

    async def wait_for_completion(self, instance_id: str,
                                  on_status: StatusCallback | None = None,
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
        return self.engine.terminate(instance_id, reason)

    async def raise_event(self, instance_id: str, name: str, data: Any = None) -> bool:
        return self.engine.raise_event(instance_id, name, json.dumps(data))

    async def purge(self, instance_id: str) -> int:
        return self.store.purge(instance_id)

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """The persisted history events of the current execution, as sent to the SDK."""
        return [e.event for e in self.store.history(instance_id)]

    def children(self, instance_id: str) -> list[str]:
        """Sub-orchestration instance ids started by this instance."""
        return self.store.children(instance_id)

    # ---- queues and HTTP -------------------------------------------------------------
    def enqueue(self, queue_name: str, message_text: str) -> int:
        """Put a message on a local queue; the bound queue trigger receives it."""
        return self.queues.enqueue(queue_name, message_text)

    def queue_messages(self, queue_name: str) -> list[str]:
        """Bodies waiting in a queue (e.g. `{queue}-poison`)."""
        return [m.body for m in self.store.queue_messages(queue_name)]

    async def serve(self, host: str = "127.0.0.1", port: int = 7071,
                    ready: asyncio.Event | None = None) -> None:
        """Serve HTTP triggers and Durable endpoints until cancelled, like `func start`.

        Durable clients inside functions always use the host's internal RPC endpoint
        (started with the host), as the extension's local RPC endpoint in Azure.
        """
        from .client_api import run_server

        await run_server(self, host, port, ready)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


async def _close_durable_http_session() -> None:
    """The SDK keeps one aiohttp session per process; close it with the loop that owns it."""
    from azure.durable_functions.models.utils import http_utils

    close = getattr(http_utils, "_close_session", None)
    if close is not None:
        await close()
