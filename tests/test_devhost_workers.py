"""FUNCTIONS_WORKER_PROCESS_COUNT and PYTHON_THREADPOOL_THREAD_COUNT: several real worker
processes share the invocations, each with its own thread pool; one worker (the default)
is the host process itself."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx

from devhost.config import HostConfig
from tests.devhost_apps.harness import WAIT, run_to_end, serving, stop, with_host


def test_two_worker_processes_share_the_work(tmp_path: Path) -> None:
    async def body(host):
        # Each process's barrier opens only when 4 calls run at once in that process, so
        # the fan-out of 8 completes only if both processes run 4 threads each.
        status = await run_to_end(host, "Spread", {"group": "two", "together": 4, "calls": 8})
        server, origin = await serving(host)
        try:
            async with httpx.AsyncClient(timeout=WAIT) as http:
                http_pids = {(await http.get(f"{origin}/api/pid")).text for _ in range(4)}
        finally:
            await stop(server)
        return status, list(host.runner.pids), http_pids

    config = HostConfig(process_count=2, thread_count=4)
    status, workers, http_pids = with_host(tmp_path, body, app="tests.devhost_apps.workers_app:app", config=config)
    pids = {run["pid"] for run in status.output["runs"]}
    assert len(workers) == 2 and pids == set(workers) and os.getpid() not in pids
    assert status.output["orchestrator_pid"] in workers
    assert {int(p) for p in http_pids} == set(workers)
    assert all(run["thread"].startswith("devhost-fn") for run in status.output["runs"])


def test_one_worker_is_the_host_process(tmp_path: Path) -> None:
    status = with_host(tmp_path, lambda host: run_to_end(host, "Spread", {"group": "one", "together": 3, "calls": 3}),
                       app="tests.devhost_apps.workers_app:app", config=HostConfig(thread_count=3))
    assert {run["pid"] for run in status.output["runs"]} == {os.getpid()}


def test_worker_settings_come_from_the_app_settings(tmp_path: Path) -> None:
    config = HostConfig.load(tmp_path, {"FUNCTIONS_WORKER_PROCESS_COUNT": "3", "PYTHON_THREADPOOL_THREAD_COUNT": "5"})
    assert (config.process_count, config.thread_count) == (3, 5)
    assert HostConfig.load(tmp_path, {"FUNCTIONS_WORKER_PROCESS_COUNT": "3"}, process_count=2).process_count == 2


def test_a_worker_process_that_dies_is_replaced(tmp_path: Path) -> None:
    marker = tmp_path / "crashed"

    async def body(host):
        before = list(host.runner.pids)
        status = await run_to_end(host, "Survives", str(marker))
        return before, status, list(host.runner.pids)

    before, status, after = with_host(tmp_path / "state", body, app="tests.devhost_apps.workers_app:app",
                                      config=HostConfig(process_count=2))
    crashed = int(marker.read_text())
    assert status.runtime_status == "Completed", status.output
    assert crashed in before and crashed not in after and len(after) == 2
    assert status.output in after, "the retry ran in a live worker"


def test_the_worker_settings_of_the_environment_apply_by_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHON_THREADPOOL_THREAD_COUNT", "3")
    monkeypatch.setenv("FUNCTIONS_WORKER_PROCESS_COUNT", "2")
    config = with_host(tmp_path, lambda host: asyncio.sleep(0, host.config), app="tests.devhost_apps.workers_app:app")
    assert (config.thread_count, config.process_count) == (3, 2)
