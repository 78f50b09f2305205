"""Batches end to end: the `rlm-batch` queue, HTTP and the CLI, through the embedded host,
the real Copilot CLI, the scripted model and the local sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rlm_activities import services
from rlm_activities.batch_results import is_correct, percentile
from tests.support.model_server import ModelServer, ScriptedError, ScriptedRequest
from tests.support.rlm import question_of, repl

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)

STATIONS = {"Alpha": "-5 C", "Bravo": "7 C", "Charlie": "19 C", "Delta": "-12 C"}
DOCUMENTS = [{"id": f"st-{name.lower()}", "title": f"{name} log", "content": f"Lowest temperature: {temp}"} for name, temp in STATIONS.items()]
ASKED = re.compile(r"Coldest reading at (\w+)\?")


def answer_from_sandbox(request: ScriptedRequest) -> str | ScriptedError:
    """Make the sandbox read the station's section, so answers come from the corpus."""
    match = ASKED.match(question_of(request))
    if match is None:
        return ScriptedError(400, "this question is scripted to fail")
    name = match.group(1)
    return repl(
        "import re\n"
        f"m = re.search(r'## {name} log\\nLowest temperature: (\\S+ C)', context)\n"
        f"used_sections = ['{name} log']\n"
        f"Final = '{name} recorded ' + m.group(1)"
    )


def five_questions(batch_id: str) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "documents": DOCUMENTS,
        "questions": [
            {"id": "alpha", "question": "Coldest reading at Alpha?", "expected": "-5 c"},
            {"id": "bravo", "question": "Coldest reading at Bravo?", "expected": "12 C"},
            {"id": "broken", "question": "Which station is broken?"},
            "Coldest reading at Charlie?",
            {"question": "Coldest reading at Delta?"},
        ],
        "options": {"max_iterations": 2},
    }


@pytest.fixture
def rlm_env(model_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RLM_DATA_DIR", str(tmp_path / "data"))
    services.reset()
    yield tmp_path / "state"
    services.reset()


def with_host(state_dir: Path, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `body(host)` inside an EmbeddedHost over the real function app."""
    from devhost import EmbeddedHost
    from function_app import app
    from shared.llm import close_models

    async def run() -> Any:
        try:
            async with EmbeddedHost(app, state_dir=state_dir) as host:
                return await body(host)
        finally:
            await close_models()

    return asyncio.run(run())


async def until(condition: Callable[[], Any], timeout: float = 120) -> Any:
    for _ in range(int(timeout * 20)):
        if value := condition():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


async def batch_done(host, batch_id: str):
    """The batch's final status, once a queue message or a request has started it."""
    instance_id = f"batch-{batch_id}"
    await until(lambda: host.store.get_instance(instance_id) is not None)
    return await host.wait_for_completion(instance_id, timeout=240)


def read_results(batch_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    store = services.store()
    lines = store.get_text(store.containers.results, f"{batch_id}.jsonl").splitlines()
    summary = json.loads(store.get_text(store.containers.results, f"{batch_id}.summary.json"))
    return [json.loads(line) for line in lines], summary


def test_queue_batch_writes_rows_and_summary_within_the_concurrency_cap(
    rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLM_BATCH_CONCURRENCY", "2")
    services.reset()
    first_two = threading.Barrier(2, timeout=60)
    seen = []
    lock = threading.Lock()

    def script(request: ScriptedRequest):
        with lock:
            seen.append(question_of(request))
            early = len(seen) <= 2
        if early:
            first_two.wait()  # the first two queries must be in flight together
        return answer_from_sandbox(request)

    model_server.set_script(script)

    async def body(host):
        host.enqueue("rlm-batch", json.dumps(five_questions("five-q")))
        status = await batch_done(host, "five-q")
        return status, host.queue_messages("rlm-batch-poison"), host.children("batch-five-q")

    status, poison, children = with_host(rlm_env, body)
    assert status.runtime_status == "Completed", status.output
    assert poison == []
    assert len(children) == 5
    rows, summary = read_results("five-q")
    assert [r["id"] for r in rows] == ["alpha", "bravo", "broken", "4", "5"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["alpha"]["answer"] == "Alpha recorded -5 C" and by_id["alpha"]["correct"] is True
    assert by_id["bravo"]["answer"] == "Bravo recorded 7 C" and by_id["bravo"]["correct"] is False
    assert by_id["4"]["correct"] is None and by_id["4"]["sources"] == ["Charlie log"]
    assert by_id["broken"]["answer"] is None and "scripted to fail" in by_id["broken"]["error"]
    assert by_id["5"]["instance_id"] == "batch-five-q-5" and by_id["5"]["usage"]["model_calls"] == 1
    assert summary["count"] == 5 and summary["answered"] == 4 and summary["failed"] == 1
    assert summary["with_expected"] == 2 and summary["correct"] == 1 and summary["accuracy"] == 0.5
    assert summary["usage"]["model_calls"] == 4
    assert summary["latency_seconds"]["max"] >= summary["latency_seconds"]["p50"] > 0
    assert status.output == summary
    assert status.custom_status == {"phase": "done", "total": 5, "done": 5, "failed": 1, "running": 0}
    assert model_server.max_overlap() == 2  # each query makes root calls only; the barrier proves 2 at once

