"""continue_as_new: new input, a fresh history, and events that arrive while the instance
continues as new are kept for the new generation. Events the old generation received but
never awaited are dropped, as the extension drops them for Python apps (its ContinueAsNew
does not preserve unprocessed events)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from devhost.history import EventType
from tests.devhost_apps import eternal_app
from tests.devhost_apps.harness import WAIT, until, with_host


def test_each_generation_starts_fresh_with_the_new_input(tmp_path: Path) -> None:
    async def body(host):
        iid = await host.start_new("Counter", 0, instance_id="count")
        for step, total in ((1, 1), (2, 3), (3, 6)):
            await host.raise_event(iid, "Add", step)
            await until(lambda t=total: _running_with(host, iid, t), f"the generation with input {total}")
        await host.raise_event(iid, "Add", None)
        return await host.wait_for_completion(iid, timeout=WAIT), host.history(iid)

    status, history = with_host(tmp_path, body, app=eternal_app.app)
    assert status.output == 6 and status.input == 6
    starts = [e for e in history if e["EventType"] == EventType.EXECUTION_STARTED]
    assert len(starts) == 1 and starts[0]["Input"] == "6"


async def _running_with(host, iid, total):
    status = await host.get_status(iid)
    return status is not None and status.runtime_status == "Running" and status.input == total


def test_an_event_arriving_during_continue_as_new_reaches_the_new_generation(tmp_path: Path) -> None:
    eternal_app.entered.clear()
    eternal_app.release.clear()

    async def body(host):
        iid = await host.start_new("Gate", 0)
        await host.raise_event(iid, "First", 1)
        assert await asyncio.to_thread(eternal_app.entered.wait, WAIT)
        await host.raise_event(iid, "Second", "kept")
        eternal_app.release.set()
        return await host.wait_for_completion(iid, timeout=WAIT)

    try:
        status = with_host(tmp_path, body, app=eternal_app.app)
    finally:
        eternal_app.release.set()
    assert status.output == {"second": "kept"}


def test_an_event_the_old_generation_never_awaited_is_dropped(tmp_path: Path) -> None:
    eternal_app.release.set()

    async def body(host):
        iid = await host.start_new("Gate", None)
        await host.suspend(iid)
        await host.raise_event(iid, "Second", "too early")
        await host.raise_event(iid, "First", 1)
        await host.resume(iid)
        return await host.wait_for_completion(iid, timeout=WAIT)

    status = with_host(tmp_path, body, app=eternal_app.app)
    assert status.output == "no second event"
