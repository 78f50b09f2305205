"""Instance management through the SDK's client, as an app calls it, and through the
Durable HTTP API: suspend/resume, terminate, rewind, restart, purge (one and by filter),
status queries with filters and paging, and show_history."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.devhost_apps import management_app
from tests.devhost_apps.harness import WAIT, serving, stop, until, with_host

APP = management_app.app


def with_client(tmp_path: Path, scenario) -> Any:
    """Run `scenario(host, call, http, origin)` with the public endpoint served; `call(op,
    **args)` invokes the app's client function and returns {"result"} or {"error"}."""
    async def body(host):
        server, origin = await serving(host)
        try:
            async with httpx.AsyncClient(timeout=WAIT) as http:
                async def call(operation: str, **args: Any) -> dict[str, Any]:
                    return (await http.post(f"{origin}/api/client/{operation}", json=args)).json()

                return await scenario(host, call, http, origin)
        finally:
            await stop(server)

    return with_host(tmp_path, body, app=APP)


async def finished(host, instance_id: str):
    return await host.wait_for_completion(instance_id, timeout=WAIT)


def test_suspend_holds_events_until_resume(tmp_path: Path) -> None:
    async def scenario(host, call, http, origin):
        await call("start", name="Waiter", id="w1")
        await until(lambda: host.history("w1"), "the first episode")
        suspended = await call("suspend", id="w1")
        after_suspend = (await call("status", id="w1"))["result"]["status"]
        await host.raise_event("w1", "Go", "now")
        await asyncio.sleep(0.3)  # an unsuspended instance would finish in this time
        held = (await call("status", id="w1"))["result"]
        await call("resume", id="w1")
        final = await finished(host, "w1")
        history = (await call("status", id="w1", history=True))["result"]["history"]
        unknown = await call("suspend", id="nobody")
        again = await call("suspend", id="w1")
        return suspended, after_suspend, held, final, history, unknown, again

    suspended, after_suspend, held, final, history, unknown, again = with_client(tmp_path, scenario)
    assert suspended == {"result": None} and after_suspend == "Suspended"
    assert held["status"] == "Suspended" and held["output"] is None
    assert final.runtime_status == "Completed" and final.output == "w1-after-now done"
    kinds = [e["EventType"] for e in history]
    assert kinds.index("ExecutionSuspended") < kinds.index("ExecutionResumed") < kinds.index("EventRaised")
    assert unknown == {"error": "No instance with ID 'nobody' found."}
    assert again == {"result": None}, "suspending a finished instance is a no-op (410), as in Azure"


def test_terminate_through_the_client(tmp_path: Path) -> None:
    async def scenario(host, call, http, origin):
        await call("start", name="Waiter", id="t1")
        await call("terminate", id="t1", reason="not needed")
        return await finished(host, "t1"), await call("terminate", id="nobody")

    status, unknown = with_client(tmp_path, scenario)
    assert status.runtime_status == "Terminated" and status.output == "not needed"
    assert unknown == {"error": "No instance with ID 'nobody' found."}


def test_rewind_reruns_only_what_failed(tmp_path: Path) -> None:
    async def scenario(host, call, http, origin):
        await call("start", name="Pipeline", id="p1")
        failed = await finished(host, "p1")
        rewound = await call("rewind", id="p1")
        done = await until(lambda: _terminal(host, "p1"), "the rewound instance")
        completed_rewind = await call("rewind", id="p1")
        return failed, rewound, done, completed_rewind, await call("rewind", id="nobody")

    failed, rewound, done, completed_rewind, unknown = with_client(tmp_path, scenario)
    assert failed.runtime_status == "Failed"
    assert "FailsOnce' failed: RuntimeError: p1-second failed the first time" in failed.output
    assert rewound == {"result": None}
    assert done.runtime_status == "Completed" and done.output == ["p1-first done", "p1-second done"]
    assert management_app.runs["p1-first"] == 1, "work that succeeded is not repeated"
    assert management_app.runs["p1-second"] == 2
    assert completed_rewind == {"error": "The rewind operation is only supported on failed orchestration instances."}
    assert unknown == {"error": "No instance with ID nobody found."}


async def _terminal(host, instance_id: str):
    status = await host.get_status(instance_id)
    return status if status is not None and status.is_terminal else None


def test_rewind_a_parent_rewinds_its_failed_child(tmp_path: Path) -> None:
    async def scenario(host, call, http, origin):
        await call("start", name="Parent", id="pp")
        failed = await finished(host, "pp")
        await call("rewind", id="pp")
        done = await until(lambda: _terminal(host, "pp"), "the rewound parent")
        return failed, done, await host.get_status("pp-child")

    failed, done, child = with_client(tmp_path, scenario)
    assert failed.runtime_status == "Failed"
    assert done.runtime_status == "Completed"
    assert done.output == {"child": ["pp-child-first done", "pp-child-second done"]}
    assert child.runtime_status == "Completed"


def test_restart_with_a_new_or_the_same_id(tmp_path: Path) -> None:
    async def scenario(host, call, http, origin):
        await call("start", name="Echo", id="e1", input={"n": 1})
        await finished(host, "e1")
        fresh = (await call("restart", id="e1"))["result"]
        fresh_status = await finished(host, fresh["id"])
        same = (await call("restart", id="e1", new_id=False))["result"]
        same_status = await until(lambda: _terminal(host, "e1"), "the restarted instance")
        return fresh, fresh_status, same, same_status, await call("restart", id="nobody")

    fresh, fresh_status, same, same_status, unknown = with_client(tmp_path, scenario)
    assert fresh["id"] != "e1", "the SDK hands back the extension's check-status payload"
    assert fresh_status.output == {"input": {"n": 1}, "value": f"echo-{fresh['id']} done"}
    assert same["id"] == "e1" and same_status.output == {"input": {"n": 1}, "value": "echo-e1 done"}
    assert management_app.runs["echo-e1"] == 2
    assert "error" in unknown


def test_status_queries_filter_and_page(tmp_path: Path) -> None:
    async def scenario(host, call, http, origin):
        for iid in ("a-1", "a-2"):
            await call("start", name="Echo", id=iid, input=iid)
            await finished(host, iid)
        middle = datetime.now(UTC)
        await call("start", name="Waiter", id="b-1")
        everything = (await call("all"))["result"]
        running = (await call("by", statuses=["Running", "Pending"]))["result"]
        prefixed = (await call("by", prefix="a-"))["result"]
        recent = (await call("by", **{"from": middle.isoformat()}))["result"]
        api = f"{origin}/runtime/webhooks/durabletask/instances"
        code = {"code": host.keys.system_key}
        first = await http.get(api, params={**code, "top": "2"})
        second = await http.get(api, params={**code, "top": "2"},
                                headers={"x-ms-continuation-token": first.headers["x-ms-continuation-token"]})
        return everything, running, prefixed, recent, first, second

    everything, running, prefixed, recent, first, second = with_client(tmp_path, scenario)
    assert {s["id"] for s in everything} == {"a-1", "a-2", "b-1"}
    assert [s["id"] for s in running] == ["b-1"]
    assert sorted(s["id"] for s in prefixed) == ["a-1", "a-2"]
    assert [s["id"] for s in recent] == ["b-1"]
    assert [s["instanceId"] for s in first.json()] == ["a-1", "a-2"]
    assert [s["instanceId"] for s in second.json()] == ["b-1"]
    assert second.headers["x-ms-continuation-token"] == "null"


def test_show_history_as_the_extension_formats_it(tmp_path: Path) -> None:
    async def scenario(host, call, http, origin):
        await call("start", name="Echo", id="h1", input="x")
        await finished(host, "h1")
        return (await call("status", id="h1", history=True))["result"]["history"]

    history = with_client(tmp_path, scenario)
    assert [e["EventType"] for e in history] == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
    assert history[0]["FunctionName"] == "Echo"
    assert history[1]["FunctionName"] == "Step" and history[1]["Result"] == "echo-h1 done"
    assert history[1]["ScheduledTime"] and "EventId" not in history[1]
    assert history[2]["OrchestrationStatus"] == "Completed"


def test_start_and_wait_through_the_http_api(tmp_path: Path) -> None:
    async def scenario(host, call, http, origin):
        api = f"{origin}/runtime/webhooks/durabletask/orchestrators/Echo"
        code = host.keys.system_key
        waited = await http.post(f"{api}/wait-1", params={"code": code, "timeout": "30", "pollingInterval": "1"},
                                 json={"n": 2})
        unknown = await http.post(f"{origin}/runtime/webhooks/durabletask/orchestrators/Nope", params={"code": code})
        return waited, unknown

    waited, unknown = with_client(tmp_path, scenario)
    assert waited.status_code == 200 and waited.json() == {"input": {"n": 2}, "value": "echo-wait-1 done"}
    assert unknown.status_code == 400
    assert unknown.json()["ExceptionMessage"].startswith("The function 'Nope' doesn't exist")


def test_purge_one_and_by_filter(tmp_path: Path) -> None:
    async def scenario(host, call, http, origin):
        before = datetime.now(UTC) - timedelta(seconds=1)
        for iid in ("x-1", "x-2", "x-3"):
            await call("start", name="Echo", id=iid)
            await finished(host, iid)
        await call("start", name="Waiter", id="live")
        one = await call("purge", id="x-1")
        gone = await call("status", id="x-1")
        unknown = await call("purge", id="x-1")
        running = await call("purge", id="live")
        by_filter = await call("purge_by", statuses=["Completed"], **{"from": before.isoformat()})
        nothing_left = await call("purge_by", statuses=["Completed"], **{"from": before.isoformat()})
        return one, gone, unknown, running, by_filter, nothing_left, await host.get_status("live")

    one, gone, unknown, running, by_filter, nothing_left, live = with_client(tmp_path, scenario)
    assert one == {"result": 1} and gone == {"result": None} and unknown == {"result": 0}
    assert running == {"error": "The operation failed with an unexpected status code 400"}
    assert by_filter == {"result": 2} and nothing_left == {"result": 0}
    assert live is not None and live.runtime_status in ("Pending", "Running")
