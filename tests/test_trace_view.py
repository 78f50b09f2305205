"""`python -m devhost trace` on a terminal shows what the trace records: the model used beside
the one code asked for, usage and cost, the notes the model was shown, why an answer was
forced, and a retrieval baseline's indexes, query and hits."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from devhost.trace_view import print_trace
from shared.models import CellResult, QueryResult, TokenUsage
from shared.trace import InstanceMeta, RetrievalDetail, RetrievedPassage, StepRecord, TraceNode

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def meta(instance_id: str, **fields: object) -> InstanceMeta:
    base = {
        "root_id": "q-1",
        "parent_id": None,
        "depth": 0,
        "question": "Which?",
        "corpus_id": "c",
        "context_chars": 10,
        "started_at": NOW,
    }
    return InstanceMeta(instance_id=instance_id, **(base | fields))


def step(kind: str, number: int, **fields: object) -> StepRecord:
    return StepRecord(instance_id="q-1", step=number, iteration=1, kind=kind, started_at=NOW, ended_at=NOW, **fields)


def shown(node: TraceNode) -> str:
    console = Console(file=io.StringIO(), record=True, width=250)
    print_trace(console, node)
    return console.export_text()


def test_an_rlm_tree_shows_models_costs_notes_and_the_forced_reason() -> None:
    priced = TokenUsage(model_calls=1, prompt_tokens=1200, cached_tokens=800, completion_tokens=40, cost=0.00123)
    child = TraceNode(
        meta=meta("q-1-1-0", parent_id="q-1", depth=1, model="small-m", requested_model="big-m"),
        result=QueryResult(answer="part", iterations=1, instance_id="q-1-1-0", trace="t", cost=0.0004),
        steps=[
            step("leaf", 1, model="small-m", requested_model="big-m", reply="part", usage=TokenUsage(model_calls=1, cost=0.0004))
        ],
    )
    root = TraceNode(
        meta=meta("q-1", model="root-m"),
        result=QueryResult(
            answer="best effort", forced=True, forced_reason="cost", iterations=2, instance_id="q-1", trace="t", cost=0.0051
        ),
        steps=[
            step("generate", 1, model="root-m", usage=priced, blocks=["print(1)"],
                 notes=["Only ```repl blocks run: the ```text block was not run.", "FINAL(...) beside code does not end the query."]),
            step("execute", 2, cell=CellResult(cell_id="q-1-1", status="done", stdout="1\n")),
            step("forced", 3, forced_reason="cost", model="root-m", reply="best effort", usage=priced),
        ],
        children=[child],
    )  # fmt: skip
    text = shown(root)
    assert "q-1 (root-m) forced (cost) cost 0.0051" in text
    assert "generate #1 it 1 root-m 1200+40 tokens (800 cached), cost 0.00123 1 lines of code" in text
    assert "told the model Only ```repl blocks run: the ```text block was not run." in text
    assert "told the model FINAL(...) beside code does not end the query." in text
    assert "forced #3 it 1 forced when the cost budget ran out root-m" in text
    assert "q-1-1-0 (small-m, asked for big-m) answered cost 0.0004" in text
    assert "leaf #1 it 1 small-m, asked for big-m" in text


def test_a_baseline_shows_its_indexes_query_and_hits() -> None:
    hits = [RetrievedPassage(passage=n, title=f"Report {n}", score=1.0 / (n + 1)) for n in range(7)]
    node = TraceNode(
        meta=meta("cmp-keyword", strategy="keyword"),
        result=QueryResult(answer="4417 [1]", iterations=1, instance_id="cmp-keyword", trace="t", cost=0.002),
        steps=[
            step("index", 1, usage=TokenUsage(), retrieval=RetrievalDetail(built=["keyword"], reused=["vector"])),
            step("retrieve", 2, retrieval=RetrievalDetail(query="vault code", hits=hits)),
            step("answer", 3, model="root-m", reply="4417 [1]", usage=TokenUsage(model_calls=1, prompt_tokens=90, cost=0.002)),
        ],
    )
    text = shown(node)
    assert "cmp-keyword (keyword) answered cost 0.002" in text
    assert "indexes built: keyword; reused: vector" in text
    assert "query: vault code" in text
    assert "hit 1: Report 0 passage 0 (score 1)" in text and "hit 5: Report 4 passage 4 (score 0.2)" in text
    assert "Report 5" not in text and "and 2 more hits" in text
    assert "answer #3 it 1 root-m 90+0 tokens, cost 0.002" in text
