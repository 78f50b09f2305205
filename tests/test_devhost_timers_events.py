"""Durable timers and external events: task_any over a timer and an event, cancelling the
timer, events buffered before they are awaited, and raising events to finished or unknown
instances through the SDK client."""
from __future__ import annotations

from pathlib import Path

import httpx

from devhost.history import EventType
from tests.devhost_apps.approval_app import app
from tests.devhost_apps.harness import WAIT, run_to_end, serving, stop, until, with_host


def test_event_wins_and_the_cancelled_timer_does_not_hold_the_instance(tmp_path: Path) -> None:
    async def body(host):
        iid = await host.start_new("Approval", {"timeout_seconds": 3600})
        await until(lambda: EventType.TIMER_CREATED in [e["EventType"] for e in host.history(iid)], "the timer")
        await host.raise_event(iid, "Approved", "ada")
        return await host.wait_for_completion(iid, timeout=WAIT)

    status = with_host(tmp_path, body, app=app)
    assert status.runtime_status == "Completed" and status.output == {"approved_by": "ada"}


def test_timer_wins_without_the_event(tmp_path: Path) -> None:
    status = with_host(tmp_path, lambda host: run_to_end(host, "Approval", {"timeout_seconds": 0.2}), app=app)
    assert status.output == "timed out"


def test_a_pending_timer_that_was_not_cancelled_keeps_the_instance_running(tmp_path: Path) -> None:
    async def body(host):
        iid = await host.start_new("Approval", {"timeout_seconds": 5, "cancel": False})
        await until(lambda: EventType.TIMER_CREATED in [e["EventType"] for e in host.history(iid)], "the timer")
        await host.raise_event(iid, "Approved", "bob")
        decided = await until(lambda: host.get_status(iid), "the decision")
        while decided.custom_status != "decided":
            await host.engine.wait_changed(iid, 1.0)
            decided = await host.get_status(iid)
        return decided, await host.wait_for_completion(iid, timeout=WAIT)

    decided, final = with_host(tmp_path, body, app=app)
    assert decided.runtime_status == "Running", "the orchestrator returned, but its timer is still pending"
    assert final.runtime_status == "Completed" and final.output == {"approved_by": "bob"}


def test_an_event_raised_before_it_is_awaited_is_kept(tmp_path: Path) -> None:
    async def body(host):
        iid = await host.start_new("PrepareThenWait", "tea")
        await host.raise_event(iid, "Ready", "now")
        return await host.wait_for_completion(iid, timeout=WAIT)

    status = with_host(tmp_path, body, app=app)
    assert status.output == {"prepared": "tea prepared", "ready": "now"}


def test_raise_event_to_finished_and_unknown_instances(tmp_path: Path) -> None:
    async def body(host):
        done = await run_to_end(host, "Approval", {"timeout_seconds": 0.05})
        server, origin = await serving(host)
        try:
            async with httpx.AsyncClient(timeout=WAIT) as http:
                gone = (await http.post(f"{origin}/api/notify/{done.instance_id}/Approved", json="late")).json()
                unknown = (await http.post(f"{origin}/api/notify/nobody/Approved", json="x")).json()
        finally:
            await stop(server)
        return done.instance_id, gone, unknown

    iid, gone, unknown = with_host(tmp_path, body, app=app)
    assert gone == {"refused": f"Instance with ID {iid} is gone: either completed or failed"}
    assert unknown == {"refused": "No instance with ID nobody found."}
