"""Durability: state survives a host restart and a SIGKILL at any point."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from devhost.history import EventType
from tests.devhost_apps.harness import WAIT, read_log, run_to_end, until, with_host
from tests.devhost_apps.run_chain import INSTANCE_ID

ROOT = Path(__file__).resolve().parents[1]
STEPS = 8


def test_completed_instance_is_readable_after_restart(tmp_path: Path) -> None:
    first = with_host(tmp_path, lambda host: run_to_end(host, "sequence", ["X"], "done-1"))

    async def body(host):
        return await host.get_status("done-1"), host.history("done-1")

    again, history = with_host(tmp_path, body)
    assert again.runtime_status == "Completed"
    assert again.output == first.output
    assert again.created_time == first.created_time
    assert history and history[-1]["EventType"] == EventType.ORCHESTRATOR_COMPLETED


def test_waiting_instance_resumes_after_restart(tmp_path: Path) -> None:
    async def start(host):
        iid = await host.start_new("waits", instance_id="paused")
        while (await host.get_status(iid)).custom_status != "waiting":
            await host.engine.wait_changed(iid, 1.0)

    with_host(tmp_path, start)

    async def finish(host):
        assert await host.raise_event("paused", "approve", "yes")
        return await host.wait_for_completion("paused", timeout=WAIT)

    assert with_host(tmp_path, finish).output == {"approved": "yes"}


def test_pending_timer_fires_after_restart(tmp_path: Path) -> None:
    async def start(host):
        iid = await host.start_new("timer", instance_id="t1")
        while EventType.TIMER_CREATED not in [e["EventType"] for e in host.history(iid)]:
            await host.engine.wait_changed(iid, 1.0)

    with_host(tmp_path, start)
    status = with_host(tmp_path, lambda host: host.wait_for_completion("t1", timeout=WAIT))
    assert status.runtime_status == "Completed" and status.output >= 0.2


def persisted_steps(state_dir: Path) -> set[int]:
    """Steps whose completion reached disk (in history or waiting in the inbox)."""
    db = sqlite3.connect(state_dir / "devhost.sqlite3")
    try:
        rows = db.execute("SELECT event FROM events WHERE instance_id=? UNION ALL "
                          "SELECT event FROM inbox WHERE instance_id=?",
                          (INSTANCE_ID, INSTANCE_ID)).fetchall()
    finally:
        db.close()
    events = [json.loads(r[0]) for r in rows]
    inputs = {e["EventId"]: json.loads(e["Input"]) for e in events
              if e["EventType"] == EventType.TASK_SCHEDULED}
    return {inputs[e["TaskScheduledId"]] for e in events
            if e["EventType"] == EventType.TASK_COMPLETED}


def run_chain(state_dir: Path, log: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, DEVHOST_TEST_LOG=str(log), DEVHOST_STEP_SECONDS="0.2",
               PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tests.devhost_apps.run_chain",
                             str(state_dir), str(STEPS)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_run_resumes_without_repeating_completed_activities(tmp_path: Path) -> None:
    state_dir, log = tmp_path / "state", tmp_path / "log.jsonl"
    victim = run_chain(state_dir, log)
    deadline = time.monotonic() + WAIT
    while sum(e["kind"] == "end" for e in read_log(log)) < 3:
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "the chain never got going"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    checkpointed = persisted_steps(state_dir)
    assert len(checkpointed) >= 2 and len(checkpointed) < STEPS

    survivor = run_chain(state_dir, log)
    out, err = survivor.communicate(timeout=WAIT)
    assert survivor.returncode == 0, err
    assert json.loads(out) == {"status": "Completed",
                               "output": sum(10 * i for i in range(STEPS))}
    starts = [e["key"] for e in read_log(log) if e["kind"] == "start"]
    for step in checkpointed:
        assert starts.count(step) == 1, f"step {step} ran again after its checkpoint"
    assert set(starts) == set(range(STEPS))


def test_the_history_a_host_keeps_in_memory_is_the_one_it_committed(tmp_path: Path) -> None:
    """Through generations (continue-as-new), waits and a rewind, the in-memory history of a
    running instance equals what a fresh reader of the state file finds."""
    from devhost.state import StateStore
    from tests.devhost_apps import eternal_app, management_app

    def on_disk(instance_id: str) -> list:
        reader = StateStore(tmp_path / "eternal" if instance_id == "count" else tmp_path / "managed")
        try:
            return reader.history(instance_id)
        finally:
            reader.close()

    async def eternal(host):
        seen = []
        await host.start_new("Counter", 0, instance_id="count")
        for step in (1, 2, 3):
            await host.raise_event("count", "Add", step)
            await until(lambda s=step: _input_is(host, "count", sum(range(1, s + 1))), f"generation {step}")
            await until(lambda: any(e["EventType"] == EventType.ORCHESTRATOR_COMPLETED for e in host.history("count")), "its episode")
            seen.append((host.store.history("count"), on_disk("count")))
        return seen

    async def managed(host):
        await host.start_new("Pipeline", instance_id="pipe")
        assert (await host.wait_for_completion("pipe", timeout=WAIT)).runtime_status == "Failed"
        await host.start_new("Waiter", instance_id="wait")
        await until(lambda: host.history("wait"), "the waiter's first episode")
        seen = [(host.store.history("wait"), on_disk("wait"))]
        assert await host.rewind("pipe", "again")
        assert (await host.wait_for_completion("pipe", timeout=WAIT)).runtime_status == "Completed"
        assert await host.raise_event("wait", "Go", "now")
        await host.wait_for_completion("wait", timeout=WAIT)
        return seen + [(host.store.history(iid), on_disk(iid)) for iid in ("pipe", "wait")]

    pairs = with_host(tmp_path / "eternal", eternal, app=eternal_app.app) + with_host(tmp_path / "managed", managed, app=management_app.app)
    for kept, stored in pairs:
        assert stored and kept == stored, (len(kept), len(stored))


async def _input_is(host, instance_id: str, total: int) -> bool:
    status = await host.get_status(instance_id)
    return status is not None and status.input == total
