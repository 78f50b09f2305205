"""The RLM loop end to end: embedded host -> real orchestrator and activities -> real
Copilot CLI -> scripted model -> local sandbox -> filesystem store."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from rlm_activities import services
from shared.models import QueryResult
from shared.trace import TraceStore
from tests.support.model_server import ModelServer, ScriptedError, ScriptedRequest
from tests.support.rlm import filler_corpus, is_forced, is_leaf, iteration_of, question_of, repl, run_query

pytestmark = pytest.mark.timeout(300)


def completed(status) -> QueryResult:
    assert str(status.runtime_status) == "Completed", status.output
    return QueryResult.model_validate(status.output)


def all_instances(host, root: str) -> list[str]:
    found, todo = [], [root]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(host.children(current))
    return found


def test_needle_in_a_10mb_corpus(rlm_env: Path, model_server: ModelServer) -> None:
    needle = "ZEBRA-4471"
    corpus = filler_corpus(10_000_000, needle=needle)
    model_server.set_script(
        lambda r: repl('import re\nm = re.search(r"secret code is (\\S+)\\.", context)\nprint(len(context))\nFinal = m.group(1)')
    )
    histories: dict[str, list] = {}
    status, _ = asyncio.run(
        run_query(rlm_env, question="What is the secret code?", corpus=corpus,
                  on_host=lambda host, iid: histories.update({i: host.history(i) for i in all_instances(host, iid)}))
    )
    result = completed(status)
    assert result.answer == needle
    assert result.iterations == 1 and not result.forced
    assert len(model_server.calls) == 1
    assert result.usage["0"].model_calls == 1
    assert _largest_payload(histories) < 32 * 1024


def test_fan_out_of_eight_sub_queries_runs_concurrently(rlm_env: Path, model_server: ModelServer) -> None:
    documents = [{"title": f"Shelf {i}", "content": " ".join(["apple"] * (i + 1) + ["pear"] * 5)} for i in range(8)]
    barrier = threading.Barrier(8, timeout=60)

    def script(request: ScriptedRequest):
        question = question_of(request)
        if question.startswith("How many apples"):
            return repl(
                'parts = context.split("\\n\\n## ")\n'
                'answers = rlm_query_batch([("Count apples here", p) for p in parts])\n'
                "used_sections = [p.lstrip('# ').splitlines()[0] for p in parts]\n"
                "Final = str(sum(int(a) for a in answers))"
            )
        barrier.wait()  # all eight children must be asking at once, or this breaks
        return repl('Final = str(context.count("apple"))')

    model_server.set_script(script)
    histories: dict[str, list] = {}
    status, _ = asyncio.run(
        run_query(rlm_env, question="How many apples are there?", documents=documents,
                  options={"max_depth": 1},
                  on_host=lambda host, iid: histories.update({i: host.history(i) for i in all_instances(host, iid)}))
    )
    result = completed(status)
    assert result.answer == str(sum(range(1, 9)))
    assert result.sub_queries == 8
    assert {s.title for s in result.sources} == {f"Shelf {i}" for i in range(8)}
    assert len(histories) == 9
    assert model_server.max_overlap() >= 8
    assert not model_server.script_failures
    assert result.usage["1"].model_calls == 8
    assert _largest_payload(histories) < 32 * 1024


def test_depth_bound_makes_leaf_calls_at_max_depth(rlm_env: Path, model_server: ModelServer) -> None:
    def script(request: ScriptedRequest):
        if is_leaf(request):
            return "leaf says 7"
        if question_of(request) == "root question":
            return repl('Final = rlm_query("middle question", context[:100])')
        return repl('Final = "middle got: " + rlm_query("bottom question")')

    model_server.set_script(script)
    instances: list[str] = []
    status, _ = asyncio.run(
        run_query(rlm_env, question="root question", corpus=filler_corpus(5000), options={"max_depth": 1},
                  on_host=lambda host, iid: instances.extend(all_instances(host, iid)))
    )
    result = completed(status)
    assert result.answer == "middle got: leaf says 7"
    assert len(instances) == 2  # the root and one child; the child's rlm_query was a leaf call
    leaf_calls = [c for c in model_server.calls if is_leaf(c.request)]
    assert len(leaf_calls) == 1 and "bottom question" in leaf_calls[0].request.prompt
    assert result.usage["2"].model_calls == 1
    # The leaf's trace record names the request it answered, so readers can place it.
    child = TraceStore(services.store()).steps(result.instance_id, f"{result.instance_id}-1-0")
    suspended = next(s for s in child if s.cell is not None and s.cell.status == "suspended")
    assert [s.request_id for s in child if s.kind == "leaf"] == [p.id for p in suspended.cell.pending]


def test_iteration_limit_forces_an_answer(rlm_env: Path, model_server: ModelServer) -> None:
    def script(request: ScriptedRequest):
        if is_forced(request):
            return "best guess: 3 stations"
        return repl(f"print('still looking, iteration {iteration_of(request)}')")

    model_server.set_script(script)
    status, _ = asyncio.run(
        run_query(rlm_env, question="How many stations?", corpus=filler_corpus(2000), options={"max_iterations": 3})
    )
    result = completed(status)
    assert result.forced
    assert result.answer == "best guess: 3 stations"
    assert result.iterations == 3
    assert len(model_server.calls) == 4
    assert "still looking, iteration 2" in model_server.calls[2].request.system


def test_failed_sub_query_leaves_parent_complete_with_error_in_trace(rlm_env: Path, model_server: ModelServer) -> None:
    def script(request: ScriptedRequest):
        question = question_of(request)
        if question == "parent":
            return repl('a, b = rlm_query_batch(["good child", "bad child"])\nFinal = a + " | " + b')
        if question == "bad child":
            return ScriptedError(400, "this deployment rejects the request")
        return repl('Final = "fine"')

    model_server.set_script(script)
    status, _ = asyncio.run(
        run_query(rlm_env, question="parent", corpus=filler_corpus(2000), options={"max_depth": 1})
    )
    result = completed(status)
    good, bad = result.answer.split(" | ")
    assert good == "fine"
    assert bad.startswith("[query failed:")
    traces = TraceStore(services.store())
    failed = [traces.result("query-1", m.instance_id) for m in traces.metas("query-1") if m.question == "bad child"]
    assert failed and failed[0] is not None and failed[0].failed and failed[0].error


def _largest_payload(histories: dict[str, list]) -> int:
    largest = 0
    for events in histories.values():
        for event in events:
            for key in ("Input", "Result", "input", "result"):
                value = event.get(key) if isinstance(event, dict) else getattr(event, key, None)
                if isinstance(value, str):
                    largest = max(largest, len(value.encode("utf-8")))
                elif value is not None:
                    largest = max(largest, len(json.dumps(value).encode("utf-8")))
    assert largest > 0, "history carried no payloads: the check would prove nothing"
    return largest


def test_a_long_question_travels_by_reference(rlm_env: Path, model_server: ModelServer) -> None:
    question = "Which section mentions " + "the harbor gauge and " * 150 + "nothing else?"
    model_server.set_script(lambda r: repl(f"Final = str({len(question_of(r))})"))
    histories: dict[str, list] = {}
    status, _ = asyncio.run(
        run_query(rlm_env, question=question, corpus=filler_corpus(2000),
                  on_host=lambda host, iid: histories.update({iid: host.history(iid)}))
    )
    assert completed(status).answer == str(len(question))  # the model saw all of it
    assert len(question) > 3000 and _largest_payload(histories) < 3000  # history carried a key and a preview


def test_a_wide_fan_out_runs_in_waves(rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_MAX_PARALLEL_SUBQUERIES", "2")
    services.reset()

    def script(request: ScriptedRequest):
        if question_of(request) == "wide":
            return repl("Final = ','.join(rlm_query_batch([f'part {i}' for i in range(5)]))")
        return repl(f"Final = {question_of(request)!r}[-1]")

    model_server.set_script(script)
    histories: dict[str, list] = {}
    status, _ = asyncio.run(
        run_query(rlm_env, question="wide", corpus=filler_corpus(2000), options={"max_depth": 1},
                  on_host=lambda host, iid: histories.update({iid: host.history(iid)}))
    )
    assert completed(status).answer == "0,1,2,3,4"
    created, finished = 7, 8  # SubOrchestrationInstanceCreated, SubOrchestrationInstanceCompleted
    children = [e["EventType"] for e in histories["query-1"] if e["EventType"] in (created, finished)]
    assert children == [created, created, finished, finished, created, created, finished, finished, created, finished]
