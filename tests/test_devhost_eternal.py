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


def test_a_timer_of_the_old_generation_firing_during_continue_as_new_is_dropped(tmp_path: Path) -> None:
    """The first generation's timer fires while the episode that continues it as new runs: its
    TimerFired names task 0 of a history that is gone, and must not complete the new
    generation's task 0 (a timer of its own, a minute away)."""
    eternal_app.relay_entered.clear()
    eternal_app.relay_release.clear()

    def fired_in_inbox(host, iid: str) -> bool:
        return any(e.event["EventType"] == EventType.TIMER_FIRED for e in host.store.inbox(iid))

    async def body(host):
        iid = await host.start_new("Relay", 0)
        await until(lambda: any(e["EventType"] == EventType.TIMER_CREATED for e in host.history(iid)), "the first timer")
        await host.raise_event(iid, "Next", "first")
        assert await asyncio.to_thread(eternal_app.relay_entered.wait, WAIT)
        await until(lambda: fired_in_inbox(host, iid), "the old generation's timer to fire")
        eternal_app.relay_release.set()
        await until(lambda: _in_generation(host, iid, 1), "the new generation")
        await host.raise_event(iid, "Next", "second")
        return await host.wait_for_completion(iid, timeout=WAIT)

    try:
        status = with_host(tmp_path, body, app=eternal_app.app)
    finally:
        eternal_app.relay_release.set()
    assert status.output == "second"


async def _in_generation(host, iid, generation):
    status = await host.get_status(iid)
    return status is not None and status.input == generation
