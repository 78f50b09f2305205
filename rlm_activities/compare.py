"""Compare: RLM and the chosen baselines on one question, in parallel, as one parent
orchestration; then each answer graded (exact match and F1 against the expected answer,
the judge's rubric scores) and the judge's pairwise preferences.

A strategy that fails is a failed row, never a failed comparison: the children are
awaited one at a time with `task_any`, so one failure does not cut the others short.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
from pydantic import BaseModel, Field

from rlm_activities import services
from rlm_activities.orchestrator import MODEL_RETRY, ORCHESTRATOR
from rlm_activities.retrieval import STRATEGY_ORCHESTRATOR
from shared import judge
from shared.compare import (
    COMPARE_ORCHESTRATOR,
    CompareProgress,
    CompareResult,
    CompareTask,
    Preference,
    outcome,
    strategy_instance_id,
)
from shared.loop import Steps
from shared.models import TokenUsage
from shared.retrieval.models import IndexOutput, PrepareInput, Strategy
from shared.telemetry import spans

bp = df.Blueprint()

STORAGE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
ERROR_CHARS = 500


class WriteCompareInput(BaseModel):
    task: CompareTask
    errors: dict[str, str] = Field(default_factory=dict)
    preferences: list[Preference] = Field(default_factory=list)
    judge_usage: TokenUsage = Field(default_factory=TokenUsage)
    index: IndexOutput | None = None
    started_at: str
    ended_at: str


def results_key(compare_id: str) -> str:
    return f"compare/{compare_id}.json"


@bp.orchestration_trigger(context_name="context", orchestration=COMPARE_ORCHESTRATOR)
def compare_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    task = CompareTask.model_validate(context.get_input())
    started_at = context.current_utc_datetime.isoformat()
    progress = CompareProgress(phase="indexing", strategies=dict.fromkeys(task.strategies, "pending"))

    def report(phase: str) -> None:
        progress.phase = phase
        context.set_custom_status(progress.model_dump())

    index = None
    if task.baselines:
        report("indexing")
        prepare = PrepareInput(corpus_id=task.corpus_id, strategies=task.strategies, trace=task.strategies_trace)
        try:
            index = IndexOutput.model_validate(
                (yield context.call_activity_with_retry("prepare_indexes", MODEL_RETRY, prepare.model_dump()))
            )
        except Exception:  # noqa: BLE001 - each baseline retries and reports it in its own row
            index = None
    running: dict[Any, Strategy] = {}
    if task.rlm is not None:
        rlm = task.rlm.model_copy(update={"owner_id": context.instance_id})  # it ends with the comparison
        running[context.call_sub_orchestrator(ORCHESTRATOR, rlm.model_dump(), rlm.root_id)] = "rlm"
    for baseline in task.baselines:
        running[context.call_sub_orchestrator(STRATEGY_ORCHESTRATOR, baseline.model_dump(), baseline.root_id)] = baseline.strategy
    progress.strategies = dict.fromkeys(task.strategies, "running")
    report("answering")
    errors: dict[str, str] = {}
    while running:
        finished = yield context.task_any(list(running))
        strategy = running.pop(finished)
        if isinstance(finished.result, Exception):
            errors[strategy] = str(finished.result)[:ERROR_CHARS]
        progress.strategies[strategy] = "failed" if strategy in errors else "done"
        report("answering")
    answered = [s for s in task.strategies if s not in errors]
    preferences: list[Preference] = []
    judge_usage = TokenUsage()
    if task.judge_model and answered:
        report("judging")
        instance = {s: strategy_instance_id(task.compare_id, s) for s in answered}
        grading = [
            context.call_activity_with_retry("judge_answer", MODEL_RETRY, judge.JudgeInput(root_id=instance[s], instance_id=instance[s], model=task.judge_model).model_dump())
            for s in answered
        ]  # fmt: skip
        pairs = judge.pair_inputs(task.compare_id, instance, task.judge_model, task.expected, task.strategies_trace)
        asked = [context.call_activity_with_retry("judge_pair", MODEL_RETRY, pair.model_dump()) for pair in pairs]
        outputs = yield context.task_all(grading + asked)  # scores are stored beside each answer
        for out in outputs[len(grading) :]:
            pair = judge.PairOutput.model_validate(out)
            preferences.append(Preference(a=pair.a, b=pair.b, winner=pair.winner))
            judge_usage += pair.usage
    report("writing the result")
    write = WriteCompareInput(
        task=task, errors=errors, preferences=preferences, judge_usage=judge_usage, index=index,
        started_at=started_at, ended_at=context.current_utc_datetime.isoformat(),
    )  # fmt: skip
    result = yield context.call_activity_with_retry("write_compare", STORAGE_RETRY, write.model_dump())
    report("done")
    return result


@bp.activity_trigger(input_name="payload")
def write_compare(payload: dict[str, Any]) -> dict[str, Any]:
    """The side-by-side result from each strategy's stored result; stored in full, returned."""
    p = WriteCompareInput.model_validate(payload)
    store, traces = services.store(), services.traces()
    expected = p.task.expected.resolve(store) if p.task.expected else None
    rows = []
    usage = p.judge_usage
    for strategy in p.task.strategies:
        instance_id = strategy_instance_id(p.task.compare_id, strategy)
        result = traces.result(instance_id, instance_id)
        answer = result.answer_ref.resolve(store) if result else None
        judged = judge.read_judgement(traces, instance_id, instance_id)
        if judged is not None:
            usage += judged.usage
        rows.append(
            outcome(strategy, instance_id, result, answer, p.errors.get(strategy), expected, judged.scores if judged else None)
        )
    spent = sum((row.usage for row in rows), usage + (p.index.usage if p.index else TokenUsage()))
    compare = CompareResult(
        question=(p.task.rlm.question if p.task.rlm else p.task.baselines[0].question).resolve(store),
        expected=expected,
        strategies=rows,
        preference=p.preferences,
        judge_usage=usage,
        index=p.index,
        cost=spent.cost,
        trace_id=p.task.trace.trace_id if p.task.trace else None,
        started_at=p.started_at,
        ended_at=p.ended_at,
    )
    store.put_text(store.containers.results, results_key(p.task.compare_id), compare.model_dump_json(indent=2))
    if p.task.trace is not None:
        answered = [row.strategy for row in rows if row.error is None]
        attributes = {"rlm.strategies": list(p.task.strategies), "rlm.answered": answered}
        spans.workflow_finished("compare", p.task.trace, p.task.compare_id, attributes, p.started_at, spent)
    return compare.model_dump()
