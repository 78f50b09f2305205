"""One distributed trace per query tree, collected with the OpenTelemetry SDK's in-memory exporter
through a real devhost run: embedded host -> real orchestrator and activities -> real Copilot CLI
-> scripted model -> local sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from shared.models import QueryResult
from shared.telemetry.context import TraceParent, query_span_id, start_trace
from shared.telemetry.spans import CELL_SPAN, QUERY_SPAN
from tests.support.model_server import ModelServer, ScriptedReply, ScriptedRequest
from tests.support.rlm import is_leaf, iteration_of, question_of, repl, run_query
from tests.support.telemetry import OtlpReceiver, in_memory

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[1]

FAN_OUT = 3
DOCUMENTS = [{"title": f"Shelf {i}", "content": " ".join(["apple"] * (i + 1) + ["pear"] * 3)} for i in range(FAN_OUT)]


REASONING_TOKENS = 7


def fan_out_script(request: ScriptedRequest) -> str | ScriptedReply:
    """Every reply reports reasoning tokens; the server's prefix cache reports cached prompt
    tokens wherever a request repeats the start of an earlier one (each child's system prompt)."""
    if is_leaf(request):
        return ScriptedReply("ok", reasoning_tokens=REASONING_TOKENS)
    if question_of(request) == "How many apples?":
        return ScriptedReply(
            repl(
                'parts = context.split("\\n\\n## ")\n'
                'counts = rlm_query_batch([("Count apples here", p) for p in parts])\n'
                'note = llm_query("Say ok")\n'
                'Final = f"{sum(int(c) for c in counts)} {note}"'
            ),
            reasoning_tokens=REASONING_TOKENS,
        )
    return ScriptedReply(repl('Final = str(context.count("apple"))'), reasoning_tokens=REASONING_TOKENS)


def hex_id(value: int) -> str:
    return f"{value:016x}"


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def run_fan_out(rlm_env: Path, model_server: ModelServer) -> tuple[QueryResult, list[Any], list[ReadableSpan]]:
    collected = in_memory()
    collected.spans.clear()
    model_server.set_script(fan_out_script)
    statuses: list[Any] = []
    status, _ = asyncio.run(
        run_query(
            rlm_env, question="How many apples?", documents=DOCUMENTS, options={"max_depth": 1},
            on_host=lambda host, iid: statuses.append(json.loads(host.store.get_instance(iid).custom_status)),
        )
    )  # fmt: skip
    assert str(status.runtime_status) == "Completed", status.output
    return QueryResult.model_validate(status.output), statuses, list(collected.spans.get_finished_spans())


def test_a_fanned_out_query_is_one_trace_with_the_expected_tree(rlm_env: Path, model_server: ModelServer) -> None:
    result, statuses, spans = run_fan_out(rlm_env, model_server)
    assert result.answer == f"{sum(range(1, FAN_OUT + 1))} ok"

    # One trace, the one the result and the status name.
    assert {f"{s.context.trace_id:032x}" for s in spans} == {result.trace_id}
    assert statuses[-1]["trace_id"] == result.trace_id
    by_id = {s.context.span_id: s for s in spans}
    assert len(by_id) == len(spans), "a span id was emitted twice"

    queries = [s for s in spans if s.name == QUERY_SPAN]
    assert len(queries) == 1 + FAN_OUT
    root = next(q for q in queries if q.attributes["rlm.depth"] == 0)
    assert root.parent is None and root.kind is SpanKind.SERVER
    assert root.context.span_id == query_span_id(result.trace_id, "query-1")
    children = [q for q in queries if q is not root]
    assert {parent_of(c) for c in children} == {root.context.span_id}
    assert sorted(c.attributes["rlm.instance_id"] for c in children) == [f"query-1-1-{k}" for k in range(FAN_OUT)]
    for query in queries:
        assert query.attributes["rlm.outcome"] == "final" and "rlm.forced_reason" not in query.attributes
        assert query.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert query.start_time < query.end_time
    assert root.attributes["rlm.sub_queries"] == FAN_OUT + 1  # three sub-queries and one leaf call
    assert root.attributes["gen_ai.usage.input_tokens"] > 0

    # Every other span hangs in the tree: steps under their query, calls and cells under their step.
    for span in spans:
        if span is not root:
            assert parent_of(span) in by_id, f"{span.name} has a parent outside the trace"
    steps = [s for s in spans if s.name.startswith("rlm.")]
    query_of = {q.attributes["rlm.instance_id"]: q.context.span_id for q in queries}
    for step in steps:
        assert parent_of(step) == query_of[step.attributes["rlm.instance_id"]], step.name
    root_steps = sorted((s.attributes.get("rlm.step", 99), s.name) for s in steps if s.attributes["rlm.instance_id"] == "query-1")
    assert root_steps == [
        (1, "rlm.open"), (2, "rlm.generate"), (3, "rlm.execute"), (4, "rlm.resume"), (5, "rlm.leaf"), (6, "rlm.resume"),
        (99, "rlm.finish"),
    ]  # fmt: skip
    for child in children:
        names = sorted(s.name for s in steps if s.attributes["rlm.instance_id"] == child.attributes["rlm.instance_id"])
        assert names == ["rlm.execute", "rlm.finish", "rlm.generate", "rlm.open"]

    calls = [s for s in spans if s.name.startswith("chat ")]
    assert len(calls) == 2 + FAN_OUT  # root generate, the leaf, each child's generate
    for call in calls:
        assert by_id[parent_of(call)].name in ("rlm.generate", "rlm.leaf")
        assert call.kind is SpanKind.CLIENT
        attributes = call.attributes
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == "gpt-5-4-mini"
        assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["gen_ai.usage.reasoning.output_tokens"] == REASONING_TOKENS
    # Each call's cached prompt tokens, as the provider reported them, on its span.
    reported = sorted(c.usage["prompt_tokens_details"]["cached_tokens"] for c in model_server.calls if c.usage)
    assert sorted(c.attributes["gen_ai.usage.cache_read.input_tokens"] for c in calls) == reported
    assert sum(reported) > 0 and sum(reported) == sum(u.cached_tokens for u in result.usage.values())
    assert root.attributes["gen_ai.usage.cache_read.input_tokens"] == sum(reported)

    cells = [s for s in spans if s.name == CELL_SPAN]
    assert len(cells) == 3 + FAN_OUT
    root_cells = sorted((by_id[parent_of(c)].attributes["rlm.step"], c.attributes["rlm.cell.status"], c.attributes["rlm.cell.pending"])
                        for c in cells if by_id[parent_of(c)].attributes["rlm.instance_id"] == "query-1")  # fmt: skip
    assert root_cells == [(3, "suspended", FAN_OUT), (4, "suspended", 1), (6, "done", 0)]
    assert all(c.status.status_code is not StatusCode.ERROR for c in cells)


def test_query_metrics_count_queries_tokens_and_fan_out(rlm_env: Path, model_server: ModelServer) -> None:
    collected = in_memory()

    def total(name: str, **match: Any) -> float:
        points = [p for p in collected.metric_points(name) if all(p.attributes.get(k) == v for k, v in match.items())]
        return sum(getattr(p, "sum", None) if hasattr(p, "bucket_counts") else p.value for p in points)

    def counts(name: str) -> int:
        return sum(p.count for p in collected.metric_points(name))

    before = {
        "started roots": total("rlm.queries.started", **{"rlm.depth": 0}),
        "started subs": total("rlm.queries.started", **{"rlm.depth": 1}),
        "roots": total("rlm.queries.finished", **{"rlm.depth": 0, "rlm.outcome": "final"}),
        "subs": total("rlm.queries.finished", **{"rlm.depth": 1}),
        "input": total("gen_ai.client.token.usage", **{"gen_ai.token.type": "input"}),
        "cached": total("rlm.model.tokens", **{"gen_ai.token.type": "cached"}),
        "calls": counts("gen_ai.client.operation.duration"),
        "fan_out": counts("rlm.fan_out.width"),
    }
    result, _, _ = run_fan_out(rlm_env, model_server)
    # One root and FAN_OUT sub-queries, each started once (the leaf call opens no session).
    assert total("rlm.queries.started", **{"rlm.depth": 0}) == before["started roots"] + 1
    assert total("rlm.queries.started", **{"rlm.depth": 1}) == before["started subs"] + FAN_OUT
    assert total("rlm.queries.finished", **{"rlm.depth": 0, "rlm.outcome": "final"}) == before["roots"] + 1
    assert total("rlm.queries.finished", **{"rlm.depth": 1}) == before["subs"] + FAN_OUT
    assert total("gen_ai.client.token.usage", **{"gen_ai.token.type": "input"}) - before["input"] == sum(
        u.prompt_tokens for u in result.usage.values()
    )
    cached = sum(u.cached_tokens for u in result.usage.values())
    assert cached > 0 and total("rlm.model.tokens", **{"gen_ai.token.type": "cached"}) - before["cached"] == cached
    assert counts("gen_ai.client.operation.duration") == before["calls"] + 2 + FAN_OUT
    assert counts("rlm.fan_out.width") == before["fan_out"] + 2  # the batch of three, then the leaf call


def test_the_trace_of_an_incoming_request_is_continued() -> None:
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert start_trace({"traceparent": header}) == TraceParent(
        trace_id="0af7651916cd43dd8448eb211c80319c", parent_span_id="b7ad6b7169203331", sampled=True
    )
    for bad in (None, "", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "01-abc", "garbage"):
        fresh = start_trace({"traceparent": bad} if bad is not None else None)
        assert fresh.parent_span_id is None and len(fresh.trace_id) == 32 and fresh.trace_id != "0" * 32
    assert TraceParent.parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").sampled is False
    assert Counter(start_trace().trace_id for _ in range(50)).most_common(1)[0][1] == 1


def test_a_killed_and_resumed_query_emits_each_span_once(tmp_path: Path, model_server: ModelServer) -> None:
    """`python -m devhost ask` exporting over OTLP/HTTP, SIGKILLed while its root waits on the model
    after a fan-out, then run again: the spans of both runs form one tree, each exactly once."""
    held, release = threading.Event(), threading.Event()

    def script(request: ScriptedRequest) -> str:
        if question_of(request) != "Sum the shelves":
            return repl('Final = str(context.count("apple"))')
        if iteration_of(request) == 1:
            return repl('parts = context.split("\\n\\n## ")\ncounts = rlm_query_batch([("Count apples here", p) for p in parts])')
        if not release.is_set():
            held.set()
            release.wait(60)
        return repl("Final = str(sum(int(c) for c in counts))")

    model_server.set_script(script)
    corpus = tmp_path / "shelves.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in DOCUMENTS[:2]), encoding="utf-8")
    args = (
        "--corpus",
        str(corpus),
        "--question",
        "Sum the shelves",
        "--instance-id",
        "crash-otel-1",
        "--max-depth",
        "1",
        "--json",
    )
    with OtlpReceiver() as receiver:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "RLM_", "AZURE_", "OTEL_", "APPLICATIONINSIGHTS_"))
        }
        env |= {
            "PYTHONPATH": str(ROOT), "COPILOT_HOME_DIR": str(tmp_path / "copilot-home"),
            "MODEL_PROVIDER": "openai", "MODEL_BASE_URL": model_server.url, "MODEL_API_KEY": "test-key",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        }  # fmt: skip
        command = [sys.executable, "-m", "devhost", "ask", "--state-dir", str(tmp_path / "state"), *args]

        def ask() -> subprocess.Popen[str]:
            return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, start_new_session=True)  # fmt: skip

        first = ask()
        assert held.wait(120), "the root never reached its second iteration"
        receiver.wait_for(
            lambda spans: any(s.name == "rlm.resume" and s.attributes["rlm.instance_id"] == "crash-otel-1" for s in spans)
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
        before_restart = len(receiver.snapshot())
        release.set()
        out, err = ask().communicate(timeout=240)
        assert out, err
        result = QueryResult.model_validate_json(out)
        spans = receiver.wait_for(lambda spans: sum(s.name == QUERY_SPAN for s in spans) == 3)

    assert result.answer == "3"
    assert before_restart > 0 and len(spans) > before_restart
    assert {s.trace_id for s in spans} == {result.trace_id}
    assert len({s.span_id for s in spans}) == len(spans)
    queries = Counter(s.attributes["rlm.instance_id"] for s in spans if s.name == QUERY_SPAN)
    assert queries == {"crash-otel-1": 1, "crash-otel-1-1-0": 1, "crash-otel-1-1-1": 1}
    steps = Counter(
        (s.attributes["rlm.instance_id"], s.attributes.get("rlm.step"), s.name) for s in spans if s.name.startswith("rlm.")
    )
    assert max(steps.values()) == 1, [k for k, n in steps.items() if n > 1]
    root_steps = sorted((step or 99, name) for iid, step, name in steps if iid == "crash-otel-1")
    assert root_steps == [(1, "rlm.open"), (2, "rlm.generate"), (3, "rlm.execute"), (4, "rlm.resume"), (5, "rlm.generate"),
                          (6, "rlm.execute"), (99, "rlm.finish")]  # fmt: skip
    ids = {s.span_id for s in spans}
    root = next(s for s in spans if s.name == QUERY_SPAN and s.attributes["rlm.depth"] == 0)
    assert root.parent_span_id is None
    assert all(s.parent_span_id in ids for s in spans if s is not root)
    assert Counter(iteration_of(c.request) for c in model_server.calls if question_of(c.request) == "Sum the shelves")[1] == 1


def test_a_step_run_inside_a_host_span_keeps_its_query_parent_and_links_the_host_span() -> None:
    from opentelemetry import trace

    from shared.payloads import TextRef
    from shared.step_models import RlmTask
    from shared.telemetry import spans

    collected = in_memory()
    task = RlmTask(
        question=TextRef(text="q"), corpus_id="c" * 64, root_id="link-1", max_depth=1, max_iterations=1, sub_max_iterations=1,
        truncate_chars=200, root_model="m", sub_model="m", trace=TraceParent(trace_id="1" * 32),
    )  # fmt: skip

    @spans.traced("open")
    def step(payload: dict[str, Any]) -> int:
        return 1

    with trace.get_tracer("host").start_as_current_span("host invocation") as host:
        assert step({"task": task.model_dump(), "instance_id": "link-1", "step": 1, "iteration": 0}) == 1
    (opened,) = [s for s in collected.spans.get_finished_spans() if s.attributes.get("rlm.root_id") == "link-1"]
    assert opened.parent.span_id == query_span_id("1" * 32, "link-1") and f"{opened.context.trace_id:032x}" == "1" * 32
    assert [link.context.span_id for link in opened.links] == [host.get_span_context().span_id]
