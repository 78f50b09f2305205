"""Orchestration behaviour of the devhost, driving the real azure.durable_functions SDK."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from devhost.config import HostConfig
from devhost.history import EventType
from tests.devhost_apps import toy_app
from tests.devhost_apps.harness import WAIT, read_log, run_to_end, with_host


def kinds(history: list[dict]) -> list[int]:
    return [e["EventType"] for e in history]


def test_sequence_of_activities_sync_and_async(tmp_path: Path) -> None:
    async def body(host):
        status = await run_to_end(host, "sequence", ["A", "B"])
        return status, host.history(status.instance_id)

    status, history = with_host(tmp_path, body)
    assert status.runtime_status == "Completed"
    assert status.output == {"greetings": ["Hello A", "Hello B"], "echo": {"n": 2}}
    assert status.input == ["A", "B"]
    scheduled = [e for e in history if e["EventType"] == EventType.TASK_SCHEDULED]
    assert [e["Name"] for e in scheduled] == ["hello", "hello", "async_echo"]
    assert [e["EventId"] for e in scheduled] == [0, 1, 2]
    completed = [e for e in history if e["EventType"] == EventType.TASK_COMPLETED]
    assert [e["TaskScheduledId"] for e in completed] == [0, 1, 2]
    assert completed[0]["Result"] == '"Hello A"'
    started = next(e for e in history if e["EventType"] == EventType.EXECUTION_STARTED)
    assert started["Version"] == "" and started["Input"] == '["A", "B"]'
    assert kinds(history)[0] == EventType.ORCHESTRATOR_STARTED
    assert kinds(history)[-2:] == [EventType.EXECUTION_COMPLETED, EventType.ORCHESTRATOR_COMPLETED]


def test_async_activities_share_the_host_loop_and_sync_ones_use_the_pool(tmp_path: Path) -> None:
    async def body(host):
        loop_thread = threading.current_thread().name
        echo = await host.runner.activity("async_echo", "1")
        pooled = await host.runner.activity("thread_name", "null")
        return loop_thread, echo.result, pooled.result

    loop_thread, echo, pooled = with_host(tmp_path, body)
    assert f'"loop_thread": "{loop_thread}"' in echo
    assert pooled.startswith('"devhost-fn')


def test_thread_pool_size_follows_worker_setting(tmp_path: Path) -> None:
    from devhost.config import HostConfig, HostConfigError

    assert HostConfig.load(tmp_path, {"PYTHON_THREADPOOL_THREAD_COUNT": "7"}).thread_count == 7
    assert HostConfig.load(tmp_path, {}).thread_count >= 1
    with pytest.raises(HostConfigError, match="PYTHON_THREADPOOL_THREAD_COUNT"):
        HostConfig.load(tmp_path, {"PYTHON_THREADPOOL_THREAD_COUNT": "lots"})


def test_fan_out_activities_overlap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("DEVHOST_TEST_LOG", str(log))

    async def body(host):
        return await run_to_end(host, "fan_out", {"group": "fan-async", "n": 8})

    status = with_host(tmp_path / "state", body)
    assert status.output == list(range(8))
    events = [e["kind"] for e in read_log(log)]
    assert events[:8] == ["start"] * 8, "every activity started before any finished"


def test_fan_out_sync_activities_overlap_in_the_pool(tmp_path: Path) -> None:
    async def body(host):
        return await run_to_end(host, "fan_out",
                                {"group": "fan-threads", "n": 4, "activity": "thread_rendezvous"})

    status = with_host(tmp_path, body, thread_count=4)
    assert status.runtime_status == "Completed" and status.output == [0, 1, 2, 3]


def test_sub_orchestration_fan_out_of_32_overlaps(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("DEVHOST_TEST_LOG", str(log))

    async def body(host):
        status = await run_to_end(host, "sub_fan_out", {"group": "subs", "n": 32},
                                  instance_id="root")
        child = await host.get_status("root-c5")
        return status, host.children("root"), child

    status, children, child = with_host(tmp_path / "state", body, config=HostConfig(max_concurrent_activities=64))
    assert status.runtime_status == "Completed"
    assert status.output == list(range(32))
    assert sorted(children) == sorted(f"root-c{i}" for i in range(32))
    assert child.parent == "root" and child.output["parent"] == "root"
    events = [e["kind"] for e in read_log(log)]
    assert events[:32] == ["start"] * 32, "all 32 children were running at once"


def test_activity_retry_succeeds_after_failures(tmp_path: Path) -> None:
    async def body(host):
        status = await run_to_end(host, "retrying", {"key": "r1", "fail": 2, "attempts": 3})
        return status, host.history(status.instance_id)

    status, history = with_host(tmp_path, body)
    assert status.output == {"result": "ok after 3", "after": "Hello after retry"}
    scheduled = [e for e in history if e["EventType"] == EventType.TASK_SCHEDULED]
    assert [e["Name"] for e in scheduled] == ["flaky", "flaky", "flaky", "hello"]
    assert kinds(history).count(EventType.TASK_FAILED) == 2
    assert kinds(history).count(EventType.TIMER_CREATED) == 2


def test_activity_retry_gives_up_after_max_attempts(tmp_path: Path) -> None:
    async def body(host):
        return await run_to_end(host, "retrying", {"key": "r2", "fail": 9, "attempts": 2})

    status = with_host(tmp_path, body)
    assert status.runtime_status == "Completed"
    assert status.output == {"failed": "Activity function 'flaky' failed: RuntimeError: flaky failure 2 "}


def test_retries_interleaved_in_a_fan_out(tmp_path: Path) -> None:
    async def body(host):
        return await run_to_end(host, "retry_fan_out")

    status = with_host(tmp_path, body)
    assert status.output == ["ok after 3", "Hello plain", "ok after 2", "Hello end"]


def test_sub_orchestrator_with_retry_and_explicit_id(tmp_path: Path) -> None:
    async def body(host):
        status = await run_to_end(host, "sub_retrying", instance_id="sr")
        return status, host.children("sr"), await host.get_status("sr-retry-child")

    status, children, child = with_host(tmp_path, body)
    assert status.output == "ok after 2"
    assert children == ["sr-retry-child"]
    assert child.runtime_status == "Completed"


def test_timer_advances_orchestration_time(tmp_path: Path) -> None:
    async def body(host):
        status = await run_to_end(host, "timer")
        return status, host.history(status.instance_id)

    status, history = with_host(tmp_path, body)
    assert status.output >= 0.2
    assert kinds(history).count(EventType.TIMER_CREATED) == 1
    assert kinds(history).count(EventType.TIMER_FIRED) == 1


def test_custom_status_reported_to_waiters(tmp_path: Path) -> None:
    seen: list = []

    async def body(host):
        iid = await host.start_new("with_status")
        return await host.wait_for_completion(iid, on_status=lambda s: seen.append(s.custom_status),
                                              timeout=WAIT)

    status = with_host(tmp_path, body)
    assert status.output == "finished" and status.custom_status == {"step": "done"}
    assert seen[-1] == {"step": "done"}
    steps = [s["step"] for s in seen if s and isinstance(s["step"], int)]
    assert steps == sorted(steps)


def test_failing_activity_is_caught_by_orchestrator(tmp_path: Path) -> None:
    status = with_host(tmp_path, lambda host: run_to_end(host, "catches"))
    assert status.runtime_status == "Completed"
    caught = status.output["caught"]
    assert caught.startswith("Activity function 'boom' failed: ValueError: boom: caught")
    assert "toy_app.py" in caught and "devhost/workers.py" not in caught


def test_orchestrator_exception_fails_instance(tmp_path: Path) -> None:
    status = with_host(tmp_path, lambda host: run_to_end(host, "raises"))
    assert status.runtime_status == "Failed"
    assert status.output == "Orchestrator function 'raises' failed: orchestrator gave up"


def test_external_event_and_terminate(tmp_path: Path) -> None:
    async def body(host):
        first = await host.start_new("waits", instance_id="w1")
        again = await host.start_new("waits", instance_id="w1")
        while (await host.get_status(first)).custom_status != "waiting":
            await host.engine.wait_changed(first, 1.0)
        await host.raise_event(first, "approve", {"by": "me"})
        approved = await host.wait_for_completion(first, timeout=WAIT)
        second = await host.start_new("waits", instance_id="w2")
        await host.terminate(second, "no longer needed")
        terminated = await host.get_status(second)
        late = await host.raise_event(second, "approve", True)
        return again, approved, terminated, late, host.history(first)

    again, approved, terminated, late, history = with_host(tmp_path, body)
    assert again == "w1"
    assert kinds(history).count(EventType.EXECUTION_STARTED) == 1
    assert approved.output == {"approved": {"by": "me"}}
    assert terminated.runtime_status == "Terminated" and terminated.output == "no longer needed"
    assert late is False


def test_continue_as_new_restarts_with_new_input(tmp_path: Path) -> None:
    async def body(host):
        status = await run_to_end(host, "counter", 0)
        return status, host.history(status.instance_id)

    status, history = with_host(tmp_path, body)
    assert status.output == 3 and status.input == 3
    starts = [e for e in history if e["EventType"] == EventType.EXECUTION_STARTED]
    assert len(starts) == 1 and starts[0]["Input"] == "3"


def test_non_determinism_fails_loudly(tmp_path: Path) -> None:
    async def body(host):
        iid = await host.start_new("replay_sensitive")
        while EventType.TASK_COMPLETED not in kinds(host.history(iid)):
            await host.engine.wait_changed(iid, 1.0)
        toy_app.FIRST_STEP[0] = "thread_name"
        try:
            await host.raise_event(iid, "go", 1)
            return await host.wait_for_completion(iid, timeout=WAIT)
        finally:
            toy_app.FIRST_STEP[0] = "hello"

    status = with_host(tmp_path, body)
    assert status.runtime_status == "Failed"
    assert "Non-deterministic workflow detected" in status.output
    assert "CALL_ACTIVITY 'hello'" in status.output and "'thread_name'" in status.output


def test_payload_sizes_are_visible_in_history(tmp_path: Path) -> None:
    async def body(host):
        status = await run_to_end(host, "payloads", 5000)
        return status, host.history(status.instance_id)

    status, history = with_host(tmp_path, body)
    assert status.output == 5000
    result = next(e for e in history if e["EventType"] == EventType.TASK_COMPLETED)
    assert len(result["Result"]) == 5002


def test_unknown_orchestrator_is_rejected(tmp_path: Path) -> None:
    async def body(host):
        with pytest.raises(LookupError, match="doesn't exist, is disabled, or is not an orchestrator function"):
            await host.start_new("nope")
        return await host.get_status("missing")

    assert with_host(tmp_path, body) is None


def test_concurrent_instances_progress_together(tmp_path: Path) -> None:
    async def body(host):
        ids = [await host.start_new("child", {"group": "many", "n": 6, "i": i}) for i in range(6)]
        return await asyncio.gather(*(host.wait_for_completion(i, timeout=WAIT) for i in ids))

    statuses = with_host(tmp_path, body)
    assert sorted(s.output["value"] for s in statuses) == list(range(6))


def test_finished_instance_id_can_be_started_again(tmp_path: Path) -> None:
    async def body(host):
        first = await run_to_end(host, "sequence", ["one"], "reused")
        second = await run_to_end(host, "sequence", ["two"], "reused")
        return first, second, host.history("reused")

    first, second, history = with_host(tmp_path, body)
    assert first.output["greetings"] == ["Hello one"]
    assert second.output["greetings"] == ["Hello two"]
    assert kinds(history).count(EventType.EXECUTION_STARTED) == 1


def test_host_error_during_an_episode_fails_the_instance(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import devhost.engine

    def broken(*args, **kwargs):
        raise RuntimeError("decision bug")

    monkeypatch.setattr(devhost.engine, "new_actions", broken)
    status = with_host(tmp_path, lambda host: run_to_end(host, "sequence"))
    assert status.runtime_status == "Failed"
    assert "decision bug" in status.output
