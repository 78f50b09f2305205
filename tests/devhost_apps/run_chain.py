"""Subprocess entry for the crash test: run (or resume) the `chain` orchestration.

Usage: python -m tests.devhost_apps.run_chain STATE_DIR STEPS
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from devhost import EmbeddedHost
from tests.devhost_apps.toy_app import app

INSTANCE_ID = "crash-chain"


async def main(state_dir: Path, steps: int) -> None:
    async with EmbeddedHost(app, state_dir=state_dir) as host:
        if await host.get_status(INSTANCE_ID) is None:
            await host.start_new("chain", input=steps, instance_id=INSTANCE_ID)
        status = await host.wait_for_completion(INSTANCE_ID)
        print(json.dumps({"status": status.runtime_status, "output": status.output}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
