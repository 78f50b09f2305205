"""Batches end to end: the `rlm-batch` queue, HTTP and the CLI, through the embedded host,
the real Copilot CLI, the scripted model and the local sandbox."""

from __future__ import annotations

import asyncio
import json
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
from rlm_activities.batch_results import percentile
from tests.support.model_server import ModelServer, ScriptedError, ScriptedRequest
from tests.support.rlm import question_of, repl
from tests.test_cli import cli_env

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
        largest = max(len(json.dumps(e)) for e in host.history("batch-five-q"))
        return status, host.queue_messages("rlm-batch-poison"), host.children("batch-five-q"), largest

    status, poison, children, largest_event = with_host(rlm_env, body)
    assert largest_event < 32 * 1024  # references, not payloads
    assert status.runtime_status == "Completed", status.output
    assert poison == []
    assert len(children) == 5
    rows, summary = read_results("five-q")
    assert [r["id"] for r in rows] == ["alpha", "bravo", "broken", "4", "5"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["alpha"]["answer"] == "Alpha recorded -5 C" and by_id["alpha"]["correct"] is True
    assert by_id["alpha"]["f1"] == 0.6667  # 2 of 4 answer tokens, both expected ones
    assert by_id["bravo"]["answer"] == "Bravo recorded 7 C" and by_id["bravo"]["correct"] is False
    assert by_id["bravo"]["f1"] == 0.3333  # only "c" is shared: p 1/4, r 1/2
    assert by_id["4"]["correct"] is None and by_id["4"]["sources"] == ["Charlie log"]
    assert by_id["broken"]["answer"] is None and "scripted to fail" in by_id["broken"]["error"]
    assert by_id["5"]["instance_id"] == "batch-five-q-5" and by_id["5"]["usage"]["model_calls"] == 1
    assert summary["count"] == 5 and summary["answered"] == 4 and summary["failed"] == 1
    assert summary["with_expected"] == 2 and summary["correct"] == 1 and summary["accuracy"] == 0.5
    assert summary["f1"] == 0.5  # mean of 0.6667 and 0.3333
    assert summary["usage"]["model_calls"] == 4
    assert summary["latency_seconds"]["max"] >= summary["latency_seconds"]["p50"] > 0
    assert status.output == summary
    assert status.custom_status == {"phase": "done", "total": 5, "done": 5, "failed": 1, "running": 0}
    assert model_server.max_overlap() == 2  # each query makes root calls only; the barrier proves 2 at once



def test_bad_messages_go_to_poison_with_a_reason_and_start_nothing(rlm_env: Path, model_server: ModelServer) -> None:
    bad = {
        "not json": "{questions: oops",
        "invalid": json.dumps({"corpus": "## a\nalpha", "questions": [], "options": {"max_depth": 99}}),
        "unknown corpus": json.dumps({"corpus_id": "0" * 64, "questions": ["Anything?"]}),
        "unpriced budget": json.dumps({"corpus": "## a\nalpha", "questions": ["Anything?"], "options": {"max_cost": 1}}),
    }

    async def body(host):
        for text in bad.values():
            host.enqueue("rlm-batch", text)
        poison = await until(lambda: len(host.queue_messages("rlm-batch-poison")) == 4 and host.queue_messages("rlm-batch-poison"))
        return [json.loads(p) for p in poison], host.queue_messages("rlm-batch"), await host.list_instances()

    poison, left, instances = with_host(rlm_env, body)
    by_message = {p["message"]: p for p in poison}
    assert set(by_message) == set(bad.values())
    assert by_message[bad["not json"]]["reason"] == "the message is not JSON"
    invalid = by_message[bad["invalid"]]
    assert invalid["reason"] == "the message is not a valid batch request"
    assert {d["field"] for d in invalid["details"]} >= {"questions", "options.max_depth"}
    assert by_message[bad["unknown corpus"]]["reason"] == f"no stored corpus with id {'0' * 64}"
    assert by_message[bad["unpriced budget"]]["reason"].endswith("there is none for gpt-5-4-mini")
    assert left == [] and instances == [] and not model_server.calls


def test_same_batch_id_delivered_twice_runs_once(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(answer_from_sandbox)
    message = json.dumps({"batch_id": "twice", "corpus": "## Alpha log\nLowest temperature: -5 C", "questions": ["Coldest reading at Alpha?"]})

    async def body(host):
        host.enqueue("rlm-batch", message)
        host.enqueue("rlm-batch", message)
        first = await batch_done(host, "twice")
        await until(lambda: host.queue_messages("rlm-batch") == [])
        host.enqueue("rlm-batch", message)  # redelivered after the batch finished
        await until(lambda: host.queue_messages("rlm-batch") == [])
        return first, await host.get_status("batch-twice"), sorted(i.instance_id for i in await host.list_instances())

    first, again, instances = with_host(rlm_env, body)
    assert first.runtime_status == "Completed"
    assert again.created_time == first.created_time and again.output == first.output
    assert instances == ["batch-twice", "batch-twice-1"]
    assert len(model_server.calls) == 1


def raced_bodies(batch_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two bodies under one batch_id whose answers tell which corpus and questions ran."""
    warm = {"batch_id": batch_id, "corpus": "## Alpha log\nLowest temperature: 30 C", "questions": ["Coldest reading at Alpha?"]}
    cold = {
        "batch_id": batch_id,
        "corpus": "## Alpha log\nLowest temperature: -40 C\n\n## Bravo log\nLowest temperature: -41 C",
        "questions": ["Coldest reading at Alpha?", "Coldest reading at Bravo?"],
    }
    return warm, cold


WINNER_ANSWERS = {"warm": ["Alpha recorded 30 C"], "cold": ["Alpha recorded -40 C", "Bravo recorded -41 C"]}


def test_twenty_concurrent_posts_of_one_batch_id_start_it_once_on_the_right_corpus(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(answer_from_sandbox)
    warm, cold = raced_bodies("raced")
    bodies = [warm if n % 2 else cold for n in range(20)]

    async def body(host):
        server, origin = await serving(host)
        try:
            async with aiohttp.ClientSession() as session:

                async def post(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
                    async with session.post(f"{origin}/api/batches", json=data) as r:
                        return r.status, await r.json()

                replies = await asyncio.gather(*(post(b) for b in bodies))
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
        return replies, await batch_done(host, "raced"), [i.instance_id for i in await host.list_instances()]

    replies, status, instances = with_host(rlm_env, body)
    codes = [code for code, _ in replies]
    assert codes.count(202) == 1, codes
    winner = bodies[codes.index(202)]
    started = replies[codes.index(202)][1]
    for sent, (code, reply) in zip(bodies, replies, strict=True):
        if sent is winner:
            assert code in (200, 202) and reply == started
        else:
            assert code == 409 and "another body" in reply["error"] and reply["details"]["status_url"] == started["status_url"]
    assert status.runtime_status == "Completed"
    rows, summary = read_results("raced")
    assert [r["answer"] for r in rows] == WINNER_ANSWERS["warm" if winner is warm else "cold"]
    assert len(model_server.calls) == len(winner["questions"]) == summary["count"]
    assert sorted(instances) == ["batch-raced"] + [f"batch-raced-{n + 1}" for n in range(len(winner["questions"]))]


def test_redelivered_and_conflicting_queue_messages_start_the_batch_once(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(answer_from_sandbox)
    warm, cold = raced_bodies("queued")
    messages = [json.dumps(warm if n % 2 else cold) for n in range(20)]

    async def body(host):
        for text in messages:  # the pump delivers them all at once
            host.enqueue("rlm-batch", text)
        status = await batch_done(host, "queued")
        await until(lambda: host.queue_messages("rlm-batch") == [])
        poison = [json.loads(p) for p in host.queue_messages("rlm-batch-poison")]
        return status, poison, [i.instance_id for i in await host.list_instances()]

    status, poison, instances = with_host(rlm_env, body)
    assert status.runtime_status == "Completed"
    rows, _ = read_results("queued")
    answers = [r["answer"] for r in rows]
    winner = "warm" if answers == WINNER_ANSWERS["warm"] else "cold"
    assert answers == WINNER_ANSWERS[winner]
    loser = json.dumps(cold if winner == "warm" else warm)
    assert [p["message"] for p in poison] == [loser] * 10
    assert all("started with another body" in p["reason"] for p in poison)
    assert len(model_server.calls) == len(rows)
    assert len(instances) == 1 + len(rows)


def test_a_claim_left_by_a_start_that_died_is_taken_over_by_its_redelivery(rlm_env: Path, model_server: ModelServer) -> None:
    from datetime import UTC, datetime

    from rlm_activities.batch_models import BatchRequest
    from shared.catalog import START_GRACE, Catalog, body_digest

    model_server.set_script(answer_from_sandbox)
    warm, _ = raced_bodies("orphan")
    died_at = datetime.now(UTC) - START_GRACE * 2  # claimed, then the process was killed before the start
    Catalog(services.store()).claim("batches", "orphan", digest=body_digest(BatchRequest.model_validate(warm)), fields={}, now=died_at)

    async def body(host):
        host.enqueue("rlm-batch", json.dumps(warm))
        return await batch_done(host, "orphan"), host.queue_messages("rlm-batch-poison")

    status, poison = with_host(rlm_env, body)
    assert status.runtime_status == "Completed" and poison == []
    assert [r["answer"] for r in read_results("orphan")[0]] == WINNER_ANSWERS["warm"]


async def serving(host) -> tuple[asyncio.Task[None], str]:
    ready = asyncio.Event()
    server = asyncio.get_running_loop().create_task(host.serve(port=0, ready=ready))
    await asyncio.wait_for(ready.wait(), 30)
    return server, host.public_url


def test_http_submits_a_batch_reads_status_and_rows_and_rejects_bad_bodies(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(answer_from_sandbox)
    batch = {"batch_id": "via-http", "documents": DOCUMENTS, "questions": [{"question": "Coldest reading at Delta?", "expected": "-12 C"}, "Coldest reading at Alpha?"]}

    async def body(host):
        server, origin = await serving(host)
        replies: dict[str, Any] = {}
        try:
            async with aiohttp.ClientSession() as session:
                for name, data in (("not json", b"{"), ("invalid", json.dumps({"questions": ["q?"]}).encode()),
                                   ("unknown corpus", json.dumps({"corpus_id": "1" * 64, "questions": ["q?"]}).encode())):
                    async with session.post(f"{origin}/api/batches", data=data) as r:
                        replies[name] = (r.status, await r.json())
                async with session.post(f"{origin}/api/batches", json=batch) as r:
                    replies["started"] = (r.status, await r.json(), r.headers["Location"])
                status_url = replies["started"][1]["status_url"]
                for _ in range(2400):
                    async with session.get(status_url) as r:
                        status = await r.json()
                    if status["status"] not in ("Pending", "Running"):
                        break
                    await asyncio.sleep(0.05)
                replies["status"] = status
                async with session.get(status["results_url"]) as r:
                    replies["rows"] = (r.status, r.headers["Content-Type"], await r.text())
                async with session.post(f"{origin}/api/batches", json=batch) as r:
                    replies["again"] = (r.status, await r.json())
                async with session.get(f"{origin}/api/batches/no-such-batch") as r:
                    replies["missing"] = (r.status, await r.json())
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
        return replies

    replies = with_host(rlm_env, body)
    assert replies["not json"][0] == 400 and replies["not json"][1]["error"] == "the body is not valid JSON"
    assert replies["invalid"][0] == 400 and "exactly one of" in json.dumps(replies["invalid"][1]["details"])
    assert replies["unknown corpus"][0] == 404 and "no stored corpus" in replies["unknown corpus"][1]["error"]
    code, started, location = replies["started"]
    assert code == 202 and started["batch_id"] == "via-http" and location == started["status_url"]
    assert location.endswith("/api/batches/via-http") and "statusQueryGetUri" in started["management"]
    status = replies["status"]
    assert status["status"] == "Completed", status
    assert status["summary"]["count"] == 2 and status["summary"]["accuracy"] == 1.0
    assert status["results_blob"] == "results/via-http.jsonl" and status["progress"]["done"] == 2
    code, content_type, text = replies["rows"]
    assert code == 200 and content_type.startswith("application/x-ndjson")
    assert [json.loads(line)["answer"] for line in text.splitlines()] == ["Delta recorded -12 C", "Alpha recorded -5 C"]
    assert replies["again"] == (200, started) and replies["missing"][0] == 404


def test_an_idempotency_key_names_a_batch_once_per_key_and_body(rlm_env: Path, model_server: ModelServer) -> None:
    """Without a batch_id, the key names the batch: the same key and body again get 200 and the
    same links, another body under the key a 409 that starts nothing."""
    model_server.set_script(answer_from_sandbox)
    batch = {"documents": DOCUMENTS, "questions": ["Coldest reading at Bravo?"]}

    async def body(host):
        server, origin = await serving(host)
        replies: dict[str, Any] = {}
        try:
            async with aiohttp.ClientSession() as session:

                async def post(name: str, data: dict[str, Any], key: str) -> None:
                    async with session.post(f"{origin}/api/batches", json=data, headers={"Idempotency-Key": key}) as r:
                        replies[name] = (r.status, await r.json())

                await post("first", batch, "nightly-7")
                replies["done"] = (await batch_done(host, replies["first"][1]["batch_id"])).runtime_status
                await post("again", batch, "nightly-7")
                await post("other body", batch | {"questions": ["Coldest reading at Delta?"]}, "nightly-7")
                await post("other key", batch, "nightly-8")
                replies["other done"] = (await batch_done(host, replies["other key"][1]["batch_id"])).runtime_status
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
        return replies

    replies = with_host(rlm_env, body)
    (code, first), (again_code, again) = replies["first"], replies["again"]
    assert code == 202 and first["batch_id"].startswith("key-") and replies["done"] == "Completed"
    assert again_code == 200 and again == first
    conflict_code, conflict = replies["other body"]
    assert conflict_code == 409 and conflict["details"]["status_url"] == first["status_url"]
    other_code, other = replies["other key"]
    assert other_code == 202 and other["batch_id"] != first["batch_id"] and replies["other done"] == "Completed"
    assert [row["answer"] for row in read_results(first["batch_id"])[0]] == ["Bravo recorded 7 C"]
    assert len(model_server.calls) == 2, "one question per started batch; the repeat and the conflict ran nothing"


def test_cli_batch_prints_the_summary(tmp_path: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    model_server.set_script(answer_from_sandbox)
    corpus = tmp_path / "stations.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in DOCUMENTS), encoding="utf-8")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "question": "Coldest reading at Alpha?", "expected": "-5 C"}) + "\n"
        + json.dumps({"id": "b", "question": "Coldest reading at Bravo?", "expected": "8 C"}) + "\n"
        + json.dumps({"id": "c", "question": "Coldest reading at Charlie?"}) + "\n",
        encoding="utf-8",
    )

    def run(*args: str) -> tuple[int, str, str]:
        command = [sys.executable, "-m", "devhost", "batch", "--state-dir", str(tmp_path / "state"), "--batch-id", "cli-batch", *args]
        done = subprocess.run(command, cwd=tmp_path, env=cli_env(tmp_path, model_server), capture_output=True, text=True, timeout=240)
        return done.returncode, done.stdout, done.stderr

    code, out, err = run("--file", str(questions), "--corpus", str(corpus), "--concurrency", "1", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["count"] == 3 and summary["answered"] == 3 and summary["accuracy"] == 0.5
    assert summary["f1"] == 0.5  # mean of 0.6667 and 0.3333
    assert model_server.max_overlap() == 1
    rows = (tmp_path / "state" / "data" / "results" / "cli-batch.jsonl").read_text().splitlines()
    assert [json.loads(r)["id"] for r in rows] == ["a", "b", "c"]

    code, out, err = run()  # the same batch id again: the stored summary, no new model calls
    assert code == 0, err
    assert "50.0% (1 of 2 with an expected answer)" in out and "3 (3 answered, 0 failed)" in out
    assert "cli-batch.jsonl" in out
    assert len(model_server.calls) == 3


def test_cli_batch_with_a_missing_questions_file_says_so(tmp_path: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    corpus = tmp_path / "c.txt"
    corpus.write_text("## a\nalpha", encoding="utf-8")
    command = [sys.executable, "-m", "devhost", "batch", "--state-dir", str(tmp_path / "state"), "--file", str(tmp_path / "nope.jsonl"), "--corpus", str(corpus)]
    done = subprocess.run(command, cwd=tmp_path, env=cli_env(tmp_path, model_server), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot read" in done.stderr
    assert not model_server.calls


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10.0 and percentile(values, 0.95) == 19.0 and percentile([3.0], 0.95) == 3.0
