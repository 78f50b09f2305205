"""Recovery is scoped: a host resumes every unfinished instance by default (serve,
resume), or only the instance trees it is asked about (ask, batch), and never feeds queue
triggers unless told to. One host at a time holds a state dir."""
from __future__ import annotations

from pathlib import Path

import pytest

from devhost import EmbeddedHost
from devhost.statelock import StateDirBusy
from tests.devhost_apps import resume_app
from tests.devhost_apps.harness import WAIT, until, with_host

APP = resume_app.app


def test_only_the_asked_instance_resumes(tmp_path: Path) -> None:
    resume_app.started.clear()
    resume_app.release.clear()

    async def interrupted(host):
        for iid in ("job-a", "job-b"):
            await host.start_new("Job", instance_id=iid)
        await until(lambda: {"job-a-0", "job-b-0"} <= set(resume_app.started), "both first steps")

    with_host(tmp_path, interrupted, app=APP)  # stopped with both first steps in flight
    resume_app.release.set()

    async def only_a(host):
        return await host.wait_for_completion("job-a", timeout=WAIT), await host.get_status("job-b")

    a, b = with_host(tmp_path, only_a, app=APP, resume=["job-a"])
    assert a.output == ["job-a-0 done", "job-a-1 done"]
    assert b.runtime_status == "Running"
    assert resume_app.started.count("job-b-0") == 1, "job-b's step was not run again for a host that was not asked"

    b = with_host(tmp_path, lambda host: host.wait_for_completion("job-b", timeout=WAIT), app=APP)
    assert b.output == ["job-b-0 done", "job-b-1 done"]


def test_queues_are_fed_only_when_asked(tmp_path: Path) -> None:
    resume_app.release.set()

    async def enqueue(host):
        host.enqueue("jobs", "queued-job")
        return host.queue_messages("jobs"), await host.list_instances()

    waiting, instances = with_host(tmp_path, enqueue, app=APP, pump_queues=False)
    assert waiting == ["queued-job"] and instances == []

    async def pumped(host):
        await until(lambda: not host.queue_messages("jobs"), "the queue to drain")
        return await until(lambda: host.list_instances(), "the job the message started")

    started = with_host(tmp_path, pumped, app=APP)
    assert [s.name for s in started] == ["Job"]


def test_one_host_per_state_dir(tmp_path: Path) -> None:
    async def body(host):
        second = EmbeddedHost(APP, state_dir=tmp_path)
        with pytest.raises(StateDirBusy, match="is using the state dir"):
            await second.start()
        return "refused"

    assert with_host(tmp_path, body, app=APP) == "refused"
    assert with_host(tmp_path, lambda host: host.list_instances(), app=APP) == [], "free again once stopped"
