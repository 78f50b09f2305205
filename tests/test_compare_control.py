"""Controlling comparisons over HTTP, through a live `devhost serve`: cancelling one stops
the parent, every strategy still running with its sub-queries, and their sandboxes, as
cancelling a query does; an Idempotency-Key starts one comparison per key and body; the
listing shows them."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from rlm_activities import services
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.retrieval import answer_from_passages, is_answer, needle_documents
from tests.support.rlm import iteration_of, question_of, repl
from tests.test_compare import finished
from tests.test_http_api import serve_app
from tests.test_sandbox_cleanup import journals
from tests.test_sandbox_isolation import alive

pytestmark = pytest.mark.timeout(300)
QUESTION = "What is the vault's secret code?"


def test_cancelling_a_compare_stops_every_strategy_and_closes_their_sandboxes(rlm_env: Path, model_server: ModelServer) -> None:
    """RLM fans out to two sub-queries, each holding a sandbox with a child process, and the keyword
    baseline waits on its answer, when the comparison is cancelled."""
    all_waiting = threading.Barrier(4, timeout=60)  # two sub-queries, the keyword answer, the test
    release = threading.Event()

    def script(request: ScriptedRequest) -> str:
        if is_answer(request):
            all_waiting.wait()
            release.wait(60)
            return answer_from_passages(request)
        if question_of(request) == QUESTION:
            return repl("Final = ' '.join(rlm_query_batch([('part a', context[:500]), ('part b', context[500:1000])]))")
        if iteration_of(request) == 1:
            return repl("import subprocess\nkeep = subprocess.Popen(['sleep', '600'])\nopen('scratch.txt', 'w').write('x')")
        all_waiting.wait()
        release.wait(60)
        return repl("print('still going')")

    model_server.set_script(script)
    body = {"question": QUESTION, "documents": needle_documents(), "strategies": ["rlm", "keyword"], "judge": False}
    seen: dict[str, Any] = {}

    async def run(client: httpx.AsyncClient) -> None:
        started = (await client.post("/api/compare", json=body)).json()
        compare_id = started["compare_id"]
        rlm = f"{compare_id}-rlm"
        tree = [compare_id, rlm, f"{rlm}-1-0", f"{rlm}-1-1", f"{compare_id}-keyword"]
        await asyncio.to_thread(all_waiting.wait)
        backend = services.parts().executor.backend
        processes = [backend.process(sid) for sid in (rlm, f"{rlm}-1-0", f"{rlm}-1-1")]
        assert all(p is not None and p.cgroup is not None for p in processes)
        seen["pids"] = {pid for p in processes for pid in p.cgroup.pids()}  # type: ignore[union-attr]
        seen["dirs"] = [p.cwd for p in processes] + [d for p in processes for d in p.cgroup.dirs]  # type: ignore[union-attr]
        seen["cancel"] = await client.post(f"/api/compare/{compare_id}/cancel")
        seen["right_after"] = (backend.live_sessions, services.parts().executor.slots.held, journals(services.store(), rlm))
        release.set()
        link = started["management"]["statusQueryGetUri"]
        seen["statuses"] = {
            iid: (await finished_instance(client, link.replace(compare_id, iid)))["runtimeStatus"] for iid in tree
        }
        seen["status"] = await finished(client, started["status_url"])
        seen["again"] = await client.post(f"/api/compare/{compare_id}/cancel")
        seen["unknown"] = await client.post("/api/compare/never-started/cancel")
        seen["listed"] = (await client.get("/api/compare")).json()
        seen["compare_id"] = compare_id
        seen["later"] = (backend.live_sessions, [p.name for p in backend.root.iterdir()])

    serve_app(rlm_env, run)
    cancel = seen["cancel"]
    assert cancel.status_code == 202, cancel.text
    assert cancel.json() == {
        "compare_id": seen["compare_id"],
        "status": "Terminating",
        "strategies": ["rlm", "keyword"],
        "sub_queries": 2,
    }
    assert set(seen["statuses"].values()) == {"Terminated"}, seen["statuses"]
    assert seen["status"]["status"] == "Terminated"
    assert len(seen["pids"]) >= 9  # bwrap, its init, the runtime and `sleep` per session
    assert not any(alive(pid) for pid in seen["pids"])
    assert not any(Path(d).exists() for d in seen["dirs"])
    assert seen["right_after"] == (0, 0, [])
    assert seen["later"] == (0, [])
    assert seen["again"].status_code == 409 and "Terminated, not running" in seen["again"].json()["error"]
    assert seen["unknown"].status_code == 404
    listed = seen["listed"]["comparisons"]
    assert [(c["compare_id"], c["status"], c["question"], c["strategies"]) for c in listed] == [
        (seen["compare_id"], "Terminated", QUESTION, ["rlm", "keyword"])
    ]


async def finished_instance(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    for _ in range(1200):
        response = await client.get(url)
        if response.status_code == 200:
            return response.json()
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never ended")


def test_an_idempotency_key_starts_one_compare_per_key_and_body(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(lambda request: answer_from_passages(request) if is_answer(request) else "ANSWER")
    body = {"question": QUESTION, "documents": needle_documents(), "strategies": ["keyword"], "judge": False}
    key = {"Idempotency-Key": "compare-9"}

    async def run(client: httpx.AsyncClient) -> dict[str, Any]:
        first = await client.post("/api/compare", json=body, headers=key)
        racing = await asyncio.gather(*(client.post("/api/compare", json=body, headers=key) for _ in range(5)))
        done = await finished(client, first.json()["status_url"])
        again = await client.post("/api/compare", json=body, headers=key)
        other = await client.post("/api/compare", json=body | {"question": "Which harbor?"}, headers=key)
        bad = await client.post("/api/compare", json=body, headers={"Idempotency-Key": "has space"})
        listed = (await client.get("/api/compare")).json()
        return {"first": first, "racing": racing, "done": done, "again": again, "other": other, "bad": bad, "listed": listed}

    seen = serve_app(rlm_env, run)
    first = seen["first"]
    assert first.status_code == 202 and first.json()["compare_id"].startswith("key-")
    assert {r.status_code for r in seen["racing"]} == {200} and all(r.json() == first.json() for r in seen["racing"])
    assert seen["done"]["status"] == "Completed" and "4417" in seen["done"]["result"]["strategies"][0]["answer"]
    assert seen["again"].status_code == 200 and seen["again"].json() == first.json()
    assert seen["again"].headers["location"] == first.json()["status_url"]
    other = seen["other"]
    assert other.status_code == 409 and other.json()["details"]["compare_id"] == first.json()["compare_id"]
    assert seen["bad"].status_code == 400 and seen["bad"].json()["details"][0]["field"] == "Idempotency-Key"
    assert [c["compare_id"] for c in seen["listed"]["comparisons"]] == [first.json()["compare_id"]]
    assert len([c for c in model_server.calls if is_answer(c.request)]) == 1  # one comparison ran
