"""Helpers for devhost tests: run a coroutine against a fresh host on its own loop."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import azure.functions as func

from devhost import EmbeddedHost
from tests.devhost_apps.toy_app import app as toy_app

WAIT = 60.0


def with_host(state_dir: Path, body: Callable[[EmbeddedHost], Awaitable[Any]],
              app: func.FunctionRegister | str = toy_app, **options: Any) -> Any:
    """Start a host on `app` (the toy app by default), run `body(host)`, stop the host;
    return body's result."""
    async def main() -> Any:
        async with EmbeddedHost(app, state_dir=state_dir, **options) as host:
            return await body(host)

    return asyncio.run(main())


async def serving(host: EmbeddedHost) -> tuple[asyncio.Task[None], str]:
    """Serve the host's public endpoint on a free port; returns the task and its origin."""
    ready = asyncio.Event()
    server = asyncio.get_running_loop().create_task(host.serve(port=0, ready=ready))
    await asyncio.wait_for(ready.wait(), WAIT)
    return server, host.public_url


async def stop(server: asyncio.Task[None]) -> None:
    server.cancel()
    await asyncio.gather(server, return_exceptions=True)


async def until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll `condition` (sync or async) until it is truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def run_to_end(host: EmbeddedHost, name: str, input: Any = None,
                     instance_id: str | None = None) -> Any:
    """Start an orchestration and wait for its terminal status."""
    iid = await host.start_new(name, input=input, instance_id=instance_id)
    return await host.wait_for_completion(iid, timeout=WAIT)
