"""Helpers for devhost tests: run a coroutine against a fresh host on its own loop."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from devhost import EmbeddedHost
from tests.devhost_apps.toy_app import app

WAIT = 60.0


def with_host(state_dir: Path, body: Callable[[EmbeddedHost], Awaitable[Any]],
              **options: Any) -> Any:
    """Start a host on the toy app, run `body(host)`, stop the host; return body's result."""
    async def main() -> Any:
        async with EmbeddedHost(app, state_dir=state_dir, **options) as host:
            return await body(host)

    return asyncio.run(main())


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def run_to_end(host: EmbeddedHost, name: str, input: Any = None,
                     instance_id: str | None = None) -> Any:
    """Start an orchestration and wait for its terminal status."""
    iid = await host.start_new(name, input=input, instance_id=instance_id)
    return await host.wait_for_completion(iid, timeout=WAIT)
