"""What a query costs: usage priced from RLM_PRICES per model, in the result, the live
progress, the trace, the batch summary and what the CLI prints."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from devhost.progress import ProgressView, print_result
from rlm_activities import services
from shared.config import ModelPrice, Settings
from shared.models import QueryResult, TokenUsage
from shared.step_models import Progress
from shared.trace import trace_tree
from tests.support.model_server import ModelServer, RecordedCall, ScriptedReply, ScriptedRequest
from tests.support.rlm import filler_corpus, is_leaf, iteration_of, question_of, repl, run_query
from tests.test_batch import batch_done, read_results, with_host
from tests.test_http_api import serve_app

pytestmark = pytest.mark.timeout(300)
PRICES = {
    "root-m": ModelPrice(input=2.0, cached_input=0.5, output=8.0),
    "sub-m": ModelPrice(input=1.0, output=4.0),
}


@pytest.fixture
def priced(rlm_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RLM_PRICES", json.dumps({m: p.model_dump() for m, p in PRICES.items()}))
    monkeypatch.setenv("ROOT_MODEL", "root-m")
    monkeypatch.setenv("SUB_MODEL", "sub-m")
    services.reset()
    return rlm_env


def cost_of(call: RecordedCall) -> float:
    """What the price table says the call costs, from the usage the server reported."""
    assert call.usage is not None
    return PRICES[call.request.model].cost(
        prompt_tokens=call.usage["prompt_tokens"],
        cached_tokens=call.usage["prompt_tokens_details"]["cached_tokens"],
        completion_tokens=call.usage["completion_tokens"],
    )


def fan_out(request: ScriptedRequest) -> str | ScriptedReply:
    if is_leaf(request):
        return "leaf says hi"
    if question_of(request) == "root":
        if iteration_of(request) == 1:
            return ScriptedReply(
                repl("answers = rlm_query_batch(['left', 'right']) + [llm_query('hello?')]\nprint(answers)"), reasoning_tokens=9
            )
        return repl("Final = ' / '.join(answers)")
    return repl(f"Final = {question_of(request)!r} + ' done'")


@pytest.mark.parametrize("model_server", [fan_out], indirect=True)
def test_cost_per_query_and_depth_in_the_result_progress_and_trace(priced: Path, model_server: ModelServer) -> None:
    statuses: list[dict[str, Any]] = []
    status, _ = asyncio.run(
        run_query(
            priced, question="root", corpus=filler_corpus(5000), options={"max_depth": 1},
            on_status=lambda s: statuses.append(s.custom_status) if isinstance(s.custom_status, dict) else None,
        )
    )  # fmt: skip
    assert str(status.runtime_status) == "Completed", status.output
    result = QueryResult.model_validate(status.output)
    assert result.answer == "left done / right done / leaf says hi"
    calls = [c for c in model_server.calls if c.status == 200]
    assert len(calls) == 5 and {c.request.model for c in calls} == {"root-m", "sub-m"}
    assert result.cost == pytest.approx(sum(cost_of(c) for c in calls))
    assert result.usage["0"].cost == pytest.approx(sum(cost_of(c) for c in calls if c.request.model == "root-m"))
    assert result.usage["1"].cost == pytest.approx(sum(cost_of(c) for c in calls if c.request.model == "sub-m"))
    assert result.usage["0"].reasoning_tokens == 9 and result.usage["0"].cached_tokens > 0
    # live progress: the cost grows with the calls and ends at the query's cost
    costs = [s["cost"] for s in statuses if s.get("cost") is not None]
    assert costs and costs == sorted(costs) and costs[-1] == pytest.approx(result.cost)
    assert any(0 < c < result.cost for c in costs)
    # the trace: every model step carries its call's cost, every instance its result's
    tree = trace_tree(services.traces(), result.instance_id)
    assert tree is not None and tree.result is not None and tree.result.cost == pytest.approx(result.cost)
    steps = [s for node in [tree, *tree.children] for s in node.steps if s.usage is not None]
    assert sorted(s.usage.cost for s in steps) == pytest.approx(sorted(cost_of(c) for c in calls))
    assert all(child.result is not None and child.result.cost for child in tree.children)


def test_without_a_price_table_usage_has_no_cost(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(repl('Final = "ok"'))
    status, _ = asyncio.run(run_query(rlm_env, question="q", corpus=filler_corpus(2000)))
    result = QueryResult.model_validate(status.output)
    assert result.cost is None and result.usage["0"].cost is None and result.usage["0"].prompt_tokens > 0


def test_the_batch_summary_adds_up_what_its_queries_cost(priced: Path, model_server: ModelServer) -> None:
    model_server.set_script(lambda r: repl(f"Final = {question_of(r)!r}.upper()"))
    batch = {
        "batch_id": "priced",
        "corpus": "## A\nalpha",
        "questions": ["one?", "two?", "three?"],
        "options": {"max_iterations": 2},
    }

    async def body(host: Any) -> Any:
        host.enqueue("rlm-batch", json.dumps(batch))
        return await batch_done(host, "priced")

    status = with_host(priced, body)
    assert status.runtime_status == "Completed", status.output
    rows, summary = read_results("priced")
    calls = [c for c in model_server.calls if c.status == 200]
    assert summary["cost"] == pytest.approx(sum(cost_of(c) for c in calls)) and summary["cost"] > 0
    assert summary["usage"]["cost"] == summary["cost"]
    assert sum(r["usage"]["cost"] for r in rows) == pytest.approx(summary["cost"])


def test_a_call_is_priced_with_cached_input_at_its_own_price() -> None:
    usage = TokenUsage(
        model_calls=1, prompt_tokens=1_000_000, cached_tokens=600_000, completion_tokens=100_000, reasoning_tokens=40_000
    )
    assert usage.priced(PRICES["root-m"]).cost == pytest.approx(0.4 * 2.0 + 0.6 * 0.5 + 0.1 * 8.0)
    assert usage.priced(PRICES["sub-m"]).cost == pytest.approx(1.0 * 1.0 + 0.1 * 4.0)  # no cached price: no discount
    assert usage.priced(None).cost is None
    assert (usage.priced(PRICES["sub-m"]) + usage).cost == pytest.approx(1.4)
    assert (usage + usage).cost is None


def test_a_cost_budget_in_settings_needs_prices_for_the_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_MAX_COST", "1.5")
    monkeypatch.setenv("ROOT_MODEL", "root-m")
    monkeypatch.setenv("SUB_MODEL", "sub-m")
    with pytest.raises(ValidationError, match="RLM_PRICES has no price for root-m, sub-m"):
        Settings()
    monkeypatch.setenv("RLM_PRICES", json.dumps({"root-m": {"input": 1, "output": 1}, "sub-m": {"input": 1, "output": 1}}))
    assert Settings().max_cost == 1.5
    monkeypatch.setenv("RLM_PRICES", json.dumps({"root-m": {"input": -1, "output": 1}}))
    with pytest.raises(ValidationError):
        Settings()


def test_the_terminal_shows_cost_budgets_and_why_an_answer_was_forced() -> None:
    status = Progress(
        phase="forcing an answer", depth=0, max_depth=1, iteration=4, max_iterations=20, tokens=5120, cached_tokens=4000,
        cost=0.0123, max_tokens=6000, max_cost=0.05, deadline="2000-01-01T00:00:00+00:00", forced_reason="tokens",
    ).model_dump()  # fmt: skip
    console = Console(file=io.StringIO(), force_terminal=True, record=True, width=120)
    with ProgressView(console, "query-9") as view:
        view.update(status)
        assert view.live is not None
        view.live.refresh()
    shown = console.export_text()
    for text in (
        "5120 (4000 cached) of a budget of 6000",
        "0.0123 of a budget of 0.05",
        "deadline",
        "passed",
        "token budget ran out",
    ):
        assert text in shown, text
    result = QueryResult(
        answer="best effort", forced=True, forced_reason="cost", iterations=3, instance_id="query-9", trace="traces/query-9/",
        usage={"0": TokenUsage(model_calls=3, prompt_tokens=900, cached_tokens=600, completion_tokens=30, cost=0.0042)}, cost=0.0042,
    )  # fmt: skip
    printed = Console(file=io.StringIO(), record=True, width=200)
    print_result(printed, result)
    text = printed.export_text()
    assert "forced when the cost budget ran out" in text and "930 tokens (600 cached), cost 0.0042" in text


def test_a_cost_budget_over_an_unpriced_model_is_refused_naming_it(
    priced: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rather than counting its calls as free: a 400 on every route that starts a query, and nothing started."""
    monkeypatch.setenv("RLM_ALLOWED_MODELS", "big-m")
    services.reset()
    corpus = {"corpus": "## A\nalpha"}

    async def send(client: Any) -> dict[str, Any]:
        return {
            "allowed": await client.post("/api/queries", json={"question": "q?", **corpus, "options": {"max_cost": 0.5}}),
            "sub model": await client.post(
                "/api/queries", json={"question": "q?", **corpus, "options": {"max_cost": 0.5, "sub_model": "other-m"}}
            ),
            "compare": await client.post("/api/compare", json={"question": "q?", **corpus, "options": {"max_cost": 0.5}}),
            "batch": await client.post("/api/batches", json={"questions": ["q?"], **corpus, "options": {"max_cost": 0.5}}),
            "listed": (await client.get("/api/queries")).json(),
            "batches": (await client.get("/api/batches")).json(),
        }

    replies = serve_app(priced, send)
    for route in ("allowed", "compare", "batch"):
        reply = replies[route]
        assert reply.status_code == 400, (route, reply.text)
        assert reply.json()["error"].endswith("there is none for big-m"), route
        assert reply.json()["details"] == [{"field": "options.max_cost", "problem": "RLM_PRICES has no price for big-m"}]
    assert replies["sub model"].status_code == 400 and "none for big-m, other-m" in replies["sub model"].json()["error"]
    assert replies["listed"] == {"queries": []} and replies["batches"] == {"batches": []}
    assert not model_server.calls
