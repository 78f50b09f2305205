"""A comparison priced and traced, through a live `devhost serve`: every strategy's chat and
embedding calls priced from RLM_PRICES, and RLM, the four baselines, the index build and the
judge as one OpenTelemetry trace, collected with the SDK's in-memory exporter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from rlm_activities import services
from shared.config import ModelPrice
from shared.telemetry.context import query_span_id
from shared.telemetry.spans import QUERY_SPAN
from tests.support.model_server import ModelServer, count_tokens
from tests.support.retrieval import needle_documents
from tests.support.telemetry import in_memory
from tests.test_compare import finished, is_judge, script
from tests.test_cost import PRICES as CHAT_PRICES
from tests.test_cost import cost_of
from tests.test_http_api import serve_app

pytestmark = pytest.mark.timeout(300)
PRICES = CHAT_PRICES | {"embed-m": ModelPrice(input=0.1)}  # an embedding model: input tokens only
BASELINES = ["keyword", "vector", "hybrid", "agentic"]
QUESTION = "What is the vault's secret code?"


@pytest.fixture
def priced(rlm_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RLM_PRICES", json.dumps({m: p.model_dump(exclude_defaults=True) for m, p in PRICES.items()}))
    monkeypatch.setenv("ROOT_MODEL", "root-m")
    monkeypatch.setenv("SUB_MODEL", "sub-m")
    monkeypatch.setenv("EMBEDDING_MODEL", "embed-m")
    services.reset()
    return rlm_env


def embedding_cost(inputs: list[str]) -> float:
    return PRICES["embed-m"].cost(prompt_tokens=sum(count_tokens(t) for t in inputs), cached_tokens=0, completion_tokens=0)


def run_compare(state_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {"question": QUESTION, "documents": needle_documents(), "expected": "4417"}

    async def run(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
        started = await client.post("/api/compare", json=body)
        assert started.status_code == 202, started.text
        done = await finished(client, started.json()["status_url"])
        assert done["status"] == "Completed", done
        traces = {
            s["strategy"]: (await client.get(f"/api/queries/{s['instance_id']}/trace")).json()
            for s in done["result"]["strategies"]
        }
        return done, traces

    return serve_app(state_dir, run)


def step_costs(node: dict[str, Any]) -> float:
    """Every step cost in a trace tree, its sub-queries' too."""
    own = sum((step["usage"] or {}).get("cost") or 0.0 for step in node["steps"])
    return own + sum(step_costs(child) for child in node["children"])


def test_a_priced_compare_counts_every_call_of_every_strategy(priced: Path, model_server: ModelServer) -> None:
    model_server.set_script(script)
    done, traces = run_compare(priced)
    result = done["result"]
    rows = {row["strategy"]: row for row in result["strategies"]}
    chats = [c for c in model_server.calls if c.status == 200]
    judged = [c for c in chats if is_judge(c.request)]
    embedded = [call.inputs for call in model_server.embedding_calls]

    # Everything the comparison spent, priced from what the server reported.
    assert result["cost"] == pytest.approx(sum(map(cost_of, chats)) + sum(map(embedding_cost, embedded)))
    assert judged and result["judge_usage"]["cost"] == pytest.approx(sum(map(cost_of, judged)))
    assert result["index"]["built"] == ["keyword", "vector"]
    built = [inputs for inputs in embedded if inputs != [QUESTION]]  # the passages, in batches
    assert result["index"]["usage"]["cost"] == pytest.approx(sum(map(embedding_cost, built)))
    # Each strategy's cost is its own calls': the steps of its trace, embeddings included.
    for strategy, row in rows.items():
        assert row["cost"] > 0 and row["cost"] == pytest.approx(row["usage"]["cost"]), strategy
        assert row["cost"] == pytest.approx(step_costs(traces[strategy])), strategy
    for strategy in ("vector", "hybrid", "agentic"):
        searches = [s for s in traces[strategy]["steps"] if s["kind"] == "retrieve"]
        assert [s["usage"]["cost"] for s in searches] == [pytest.approx(embedding_cost([QUESTION]))], strategy
    assert [s["usage"]["cost"] for s in traces["keyword"]["steps"] if s["kind"] == "retrieve"] == [None]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_a_compare_is_one_trace_with_every_strategy_and_the_judge(rlm_env: Path, model_server: ModelServer) -> None:
    collected = in_memory()
    collected.spans.clear()
    model_server.set_script(script)
    done, _ = run_compare(rlm_env)
    spans = list(collected.spans.get_finished_spans())
    result = done["result"]
    trace_id = result["trace_id"]
    compare_id = result["strategies"][0]["instance_id"].removesuffix("-rlm")

    assert {f"{s.context.trace_id:032x}" for s in spans} == {trace_id}
    by_id = {s.context.span_id: s for s in spans}
    assert len(by_id) == len(spans), "a span id was emitted twice"
    (compare,) = [s for s in spans if s.name == "invoke_workflow compare"]
    assert compare.parent is None and compare.kind is SpanKind.SERVER
    assert compare.context.span_id == query_span_id(trace_id, compare_id)
    assert compare.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert all(parent_of(s) in by_id for s in spans if s is not compare), "a span has a parent outside the trace"

    # RLM and each baseline: one agent span under the comparison, its steps under it.
    agents = {s.attributes["rlm.instance_id"]: s for s in spans if s.name.startswith("invoke_agent ")}
    assert sorted(agents) == sorted(f"{compare_id}-{name}" for name in ["rlm", *BASELINES])
    assert {parent_of(a) for a in agents.values()} == {compare.context.span_id}
    assert agents[f"{compare_id}-rlm"].name == QUERY_SPAN
    steps: dict[str, list[str]] = {}
    for span in spans:
        if span.name.startswith("rlm.") and parent_of(span) != compare.context.span_id:
            iid = span.attributes["rlm.instance_id"]
            assert parent_of(span) == agents[iid].context.span_id, span.name
            steps.setdefault(iid.removeprefix(f"{compare_id}-"), []).append(span.name)
    assert sorted(steps["rlm"]) == ["rlm.execute", "rlm.finish", "rlm.generate", "rlm.judge", "rlm.open"]
    for name in ("keyword", "vector", "hybrid"):
        assert sorted(steps[name]) == ["rlm.answer", "rlm.finish", "rlm.index", "rlm.judge", "rlm.retrieve"], name
    assert sorted(steps["agentic"]) == ["rlm.answer", "rlm.finish", "rlm.index", "rlm.judge", "rlm.retrieve", "rlm.rewrite"]
    for name in BASELINES:
        agent = agents[f"{compare_id}-{name}"]
        assert agent.kind is SpanKind.SERVER and agent.attributes["gen_ai.agent.name"] == name
        assert agent.attributes["rlm.outcome"] == "final" and agent.attributes["gen_ai.usage.input_tokens"] > 0

    # Beside the strategies: the index build and the judge's ten pairwise preferences.
    beside = [s for s in spans if parent_of(s) == compare.context.span_id and s not in agents.values()]
    assert sorted(s.name for s in beside) == ["rlm.index"] + ["rlm.judge"] * 10

    # Model calls hang under the step that made them, with the GenAI attributes.
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == len([c for c in model_server.calls if c.status == 200]) == 1 + 3 + 2 + 5 * 3 + 10 * 2
    assert {by_id[parent_of(c)].name for c in chats} == {"rlm.generate", "rlm.answer", "rlm.rewrite", "rlm.judge"}
    embeddings = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "embeddings"]
    assert len(embeddings) == len(model_server.embedding_calls) and embeddings
    assert {by_id[parent_of(e)].name for e in embeddings} == {"rlm.index", "rlm.retrieve"}
    for call in chats + embeddings:
        attributes = call.attributes
        assert call.kind is SpanKind.CLIENT and attributes["gen_ai.provider.name"] == "openai"
        assert call.name == f"{attributes['gen_ai.operation.name']} {attributes['gen_ai.request.model']}"
        assert attributes["gen_ai.response.model"] == attributes["gen_ai.request.model"]
        assert attributes["gen_ai.usage.input_tokens"] > 0
    assert all(e.name == "embeddings text-embedding-3-small" for e in embeddings)
