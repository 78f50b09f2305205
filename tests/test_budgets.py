"""Budgets of a whole recursion tree (tokens, cost, deadline) running out in the middle of a
fan-out: through the embedded host, the real Copilot CLI, the scripted model and the local
sandbox, and through the in-process runner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rlm_activities import services
from shared.budget import CHILD_TIME_SHARE, Budget
from shared.loop import run_local
from shared.models import QueryRequest, QueryResult, TokenUsage
from shared.prompts import NO_CODE_NUDGE
from shared.steps import Parts
from shared.telemetry.spans import QUERY_SPAN
from shared.trace import trace_tree
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import filler_corpus, is_forced, is_leaf, iteration_of, question_of, repl, run_query
from tests.support.telemetry import in_memory

pytestmark = pytest.mark.timeout(300)
PARTS = 4
PRICES = {"root-m": {"input": 2.0, "cached_input": 0.5, "output": 8.0}, "sub-m": {"input": 1.0, "output": 4.0}}


def endless(request: ScriptedRequest) -> str:
    """The root fans out PARTS sub-queries, then keeps looking; nobody ever sets Final, so
    only a budget ends the tree (the iteration limits are far away)."""
    if is_forced(request):
        return f"best effort for {question_of(request)}"
    if question_of(request) == "root":
        if iteration_of(request) == 1:
            return repl(
                f"answers = rlm_query_batch([(f'part {{i}}', context[i * 500:(i + 1) * 500]) for i in range({PARTS})])\nprint(answers)"
            )
        return repl("print(len(answers), context[:300])")
    return repl("print(context[:400])")


class Tree:
    """What the host knew when the root finished: every instance's status, and whether its sandbox is gone."""

    def __init__(self) -> None:
        self.statuses: dict[str, str] = {}
        self.sandboxes_open: list[str] = []

    def capture(self, host: Any, root: str) -> None:
        todo = [root]
        backend = services.parts().executor.backend
        while todo:
            current = todo.pop()
            todo.extend(host.children(current))
            self.statuses[current] = host.store.get_instance(current).status
            if backend.process(current) is not None:
                self.sandboxes_open.append(current)


def run_tree(state_dir: Path, options: dict[str, Any]) -> tuple[QueryResult, Tree]:
    tree = Tree()
    status, _ = asyncio.run(
        run_query(state_dir, question="root", corpus=filler_corpus(20_000), options={"max_depth": 1, "max_iterations": 30,
                  "sub_max_iterations": 30, **options}, on_host=tree.capture)
    )  # fmt: skip
    assert str(status.runtime_status) == "Completed", status.output
    return QueryResult.model_validate(status.output), tree


def assert_forced_everywhere(result: QueryResult, tree: Tree, reason: str) -> None:
    """The root and every sub-query answered with what they had, said why, and left nothing running."""
    assert result.forced and result.forced_reason == reason
    assert result.answer == "best effort for root"
    assert result.sub_queries == PARTS
    assert set(tree.statuses.values()) == {"Completed"} and len(tree.statuses) == PARTS + 1
    assert tree.sandboxes_open == []
    root = trace_tree(services.traces(), result.instance_id)
    assert root is not None and len(root.children) == PARTS
    for node in [root, *root.children]:
        assert node.result is not None and node.result.forced_reason == reason, node.meta.instance_id
        forced = [s for s in node.steps if s.kind == "forced"]
        assert len(forced) == 1 and forced[0].forced_reason == reason
    assert len({c.result.answer for c in root.children if c.result}) == PARTS  # each child answered its own part


def largest_calls(result: QueryResult, measure: Callable[[TokenUsage], float]) -> float:
    """The largest model call of each loop, summed: the most the tree may overshoot by."""
    root = trace_tree(services.traces(), result.instance_id)
    assert root is not None
    return sum(max(measure(s.usage) for s in node.steps if s.usage) for node in [root, *root.children])


def total(result: QueryResult) -> TokenUsage:
    return sum(result.usage.values(), TokenUsage())


@pytest.mark.parametrize("model_server", [endless], indirect=True)
def test_a_token_budget_running_out_mid_fan_out_forces_every_answer(rlm_env: Path, model_server: ModelServer) -> None:
    result, tree = run_tree(rlm_env, {"max_tokens": 12_000})
    assert_forced_everywhere(result, tree, "tokens")
    used = total(result).total_tokens
    assert used == sum(c.usage["total_tokens"] for c in model_server.calls if c.usage)
    assert 12_000 / 2 < used <= 12_000 + largest_calls(result, lambda u: u.total_tokens)
    assert len(model_server.calls) < 5 * (1 + PARTS)  # without the budget it would run 30 iterations each


@pytest.mark.parametrize("model_server", [endless], indirect=True)
def test_a_cost_budget_running_out_mid_fan_out_forces_every_answer(
    rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLM_PRICES", json.dumps(PRICES))
    monkeypatch.setenv("ROOT_MODEL", "root-m")
    monkeypatch.setenv("SUB_MODEL", "sub-m")
    services.reset()
    result, tree = run_tree(rlm_env, {"max_cost": 0.02})
    assert_forced_everywhere(result, tree, "cost")
    assert result.cost is not None and 0.02 / 2 < result.cost <= 0.02 + largest_calls(result, lambda u: u.cost or 0.0)
    assert result.cost == pytest.approx(total(result).cost)
    assert {c.request.model for c in model_server.calls} == {"root-m", "sub-m"}


@pytest.mark.parametrize("model_server", [endless], indirect=True)
def test_a_deadline_passing_mid_fan_out_forces_every_answer(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_latency(0.3)  # the tree would take minutes to reach its iteration limits
    histories: dict[str, list[dict[str, Any]]] = {}

    def capture(host: Any, root: str) -> None:
        tree.capture(host, root)
        histories.update({iid: host.history(iid) for iid in tree.statuses})

    tree = Tree()
    status, _ = asyncio.run(
        run_query(rlm_env, question="root", corpus=filler_corpus(20_000), on_host=capture,
                  options={"max_depth": 1, "max_iterations": 30, "sub_max_iterations": 30, "deadline_seconds": 6})
    )  # fmt: skip
    assert str(status.runtime_status) == "Completed", status.output
    result = QueryResult.model_validate(status.output)
    assert_forced_everywhere(result, tree, "deadline")
    timer_created, timer_fired = 10, 11
    for iid, events in histories.items():
        kinds = [e["EventType"] for e in events]
        assert kinds.count(timer_created) == 1 and kinds.count(timer_fired) == 1, iid  # one durable timer each


@pytest.mark.parametrize("model_server", [endless], indirect=True)
def test_the_in_process_runner_has_the_same_deadline(model_env, model_server: ModelServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RLM_DATA_DIR", str(tmp_path / "data"))
    model_server.set_latency(0.3)
    parts = Parts.from_settings(type(model_env)())
    request = QueryRequest(question="root", corpus=filler_corpus(20_000), options={
        "max_depth": 1, "max_iterations": 30, "sub_max_iterations": 30, "deadline_seconds": 5})  # fmt: skip

    async def main() -> QueryResult:
        from shared.llm import close_models

        try:
            return await run_local(request, parts, instance_id="local-deadline")
        finally:
            await close_models()

    result = asyncio.run(main())
    assert result.forced and result.forced_reason == "deadline" and result.answer == "best effort for root"
    root = trace_tree(parts.traces, "local-deadline")
    assert root is not None and len(root.children) == PARTS
    assert all(c.result is not None and c.result.forced_reason == "deadline" for c in root.children)
    assert all(parts.executor.backend.process(n.meta.instance_id) is None for n in [root, *root.children])


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [("RLM_MAX_TOKENS", "12000", "tokens"), ("RLM_DEADLINE_SECONDS", "10", "deadline")],
    ids=["tokens", "deadline"],
)
@pytest.mark.parametrize("model_server", [endless], indirect=True)
def test_a_budget_from_the_settings_limits_a_query_that_names_none(
    rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch, setting: str, value: str, reason: str
) -> None:
    """No budget in the query's options: the settings' default bounds the whole tree all the same,
    and each query's span says why its answer was forced."""
    monkeypatch.setenv(setting, value)
    services.reset()
    if reason == "deadline":
        model_server.set_latency(0.3)  # the tree would take minutes to reach its iteration limits
    collected = in_memory()
    collected.spans.clear()
    result, tree = run_tree(rlm_env, {})
    assert_forced_everywhere(result, tree, reason)
    if reason == "tokens":
        assert total(result).total_tokens <= 12_000 + largest_calls(result, lambda u: u.total_tokens)
    queries = [s for s in collected.spans.get_finished_spans() if s.name == QUERY_SPAN]
    assert len(queries) == 1 + PARTS
    assert {(s.attributes["rlm.outcome"], s.attributes["rlm.forced_reason"]) for s in queries} == {("forced", reason)}


def test_a_child_gets_an_equal_part_of_what_is_left_and_an_earlier_deadline() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    budget = Budget(tokens=10_000, cost=1.0, deadline=now + timedelta(seconds=100))
    used = TokenUsage(prompt_tokens=1500, completion_tokens=500, cost=0.2)
    share = budget.share(used, parts=4, now=now + timedelta(seconds=20))
    assert share.tokens == 2000 and share.cost == pytest.approx(0.2)
    assert share.deadline == now + timedelta(seconds=20 + 80 * CHILD_TIME_SHARE)
    assert Budget().share(used, 4, now) == Budget()
    assert Budget(tokens=100).share(TokenUsage(prompt_tokens=500), 2, now).tokens == 0


def test_a_loop_stops_when_what_is_left_would_not_pay_for_two_more_calls_like_its_last() -> None:
    budget = Budget(tokens=10_000, cost=1.0)
    last = TokenUsage(prompt_tokens=2000, completion_tokens=500, cost=0.1)
    assert budget.spent(TokenUsage(prompt_tokens=4000), last, deadline_passed=False) is None
    assert budget.spent(TokenUsage(prompt_tokens=5000), last, deadline_passed=False) == "tokens"
    assert budget.spent(TokenUsage(cost=0.8), last, deadline_passed=False) == "cost"
    assert budget.spent(TokenUsage(), TokenUsage(), deadline_passed=True) == "deadline"
    assert Budget().spent(TokenUsage(prompt_tokens=10**9), last, deadline_passed=False) is None


def test_a_root_deadline_counts_from_when_its_loop_starts() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    started = Budget(deadline_seconds=30).started(now)
    assert started.deadline == now + timedelta(seconds=30)
    assert started.started(now + timedelta(hours=1)) == started
    assert Budget.model_validate(started.model_dump()) == started and isinstance(started.model_dump()["deadline"], str)


def test_waves_after_the_budget_ran_out_are_not_run_and_the_cell_is_told(
    rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLM_MAX_PARALLEL_SUBQUERIES", "2")
    services.reset()

    def script(request: ScriptedRequest) -> str:
        if is_leaf(request):
            return "a long read"
        if is_forced(request):
            return "what the first two said"
        return repl("answers = llm_query_batch([context[:20000]] * 4)\nprint(answers)")

    model_server.set_script(script)
    status, _ = asyncio.run(run_query(rlm_env, question="wide", corpus=filler_corpus(30_000), options={"max_tokens": 5000}))
    result = QueryResult.model_validate(status.output)
    assert result.forced and result.forced_reason == "tokens" and result.answer == "what the first two said"
    assert len([c for c in model_server.calls if is_leaf(c.request)]) == 2  # the second wave never started
    forced = [c.request for c in model_server.calls if is_forced(c.request)]
    assert len(forced) == 1
    printed = "['a long read', 'a long read', \"[llm_query was not run: The query's token budget is spent.]\", "
    assert printed in forced[0].system  # the cell finished with the answers it got, and the model saw it


def test_a_cell_that_asks_again_after_its_not_run_answer_is_shown_stopped(rlm_env: Path, model_server: ModelServer) -> None:
    """Once the budget is spent, a cell's requests get one "not run" answer; one that asks again
    is left waiting, and the forced call says so instead of asking for a code block."""

    def script(request: ScriptedRequest) -> str:
        if is_leaf(request):
            return "a long read"
        if is_forced(request):
            return "what the first one said"
        return repl(
            "print('reading')\nfirst = llm_query(context[:20000])\nsecond = llm_query('again?')\n"
            "third = llm_query('and again?')\nprint(first, second, third)"
        )

    model_server.set_script(script)
    status, _ = asyncio.run(run_query(rlm_env, question="thrice", corpus=filler_corpus(30_000), options={"max_tokens": 5000}))
    result = QueryResult.model_validate(status.output)
    assert result.forced and result.forced_reason == "tokens" and result.answer == "what the first one said"
    assert len([c for c in model_server.calls if is_leaf(c.request)]) == 1  # the others were never run
    (forced,) = [c.request for c in model_server.calls if is_forced(c.request)]
    shown = forced.system.split("--- Iteration 1: REPL output ---\n", 1)[1]
    assert shown.startswith("reading\n[the cell was stopped while it waited on 1 more request(s) (llm_query), which were not run: "
                            "The query's token budget is spent. No more code will run; answer now")  # fmt: skip
    assert NO_CODE_NUDGE not in forced.system
    root = trace_tree(services.traces(), result.instance_id)
    assert root is not None and [s.cell.status for s in root.steps if s.cell] == ["suspended", "suspended", "suspended"]
