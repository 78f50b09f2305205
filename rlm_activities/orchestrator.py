"""The RLM loop as a Durable orchestration: generate -> execute -> (fan out) -> resume,
until the code sets Final or the iteration budget runs out.

Orchestrator code is replayed from history, so it stays deterministic: no clock but
`current_utc_datetime`, no I/O; every effect is an activity or a sub-orchestration.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from rlm_activities.messages import (
    ORCHESTRATOR,
    CellSummary,
    FinishInput,
    GenerateOutput,
    OpenOutput,
    PendingRef,
    Progress,
    RlmTask,
    SubAnswer,
)
from shared.models import QueryResult, TokenUsage
from shared.payloads import TextRef

bp = df.Blueprint()

MODEL_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)
SANDBOX_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)

Steps = Generator[Any, Any, Any]


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def rlm_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    task = RlmTask.model_validate(context.get_input())
    return (yield from RlmLoop(context, task).run())


class RlmLoop:
    """One (sub-)query. Counters live here so each step gets a stable trace number."""

    def __init__(self, context: df.DurableOrchestrationContext, task: RlmTask) -> None:
        self.context = context
        self.task = task
        self.instance_id = context.instance_id
        self.started_at = context.current_utc_datetime.isoformat()
        self.step = 0
        self.usage: dict[str, TokenUsage] = {}
        self.sub_queries = 0
        self.used_sections: list[str] = []
        self.progress = Progress(phase="starting", depth=task.depth, iteration=0, max_iterations=task.max_iterations)

    def run(self) -> Steps:
        iteration = 0
        try:
            opened = OpenOutput.model_validate((yield self._call("open_session", SANDBOX_RETRY, 0)))
            iteration, answer, outcome = yield from self._iterate(opened)
            error = None
        except Exception as exc:  # noqa: BLE001 - any failure becomes a recorded, failed result
            answer, outcome, error = TextRef(text=f"[query failed: {exc}]"), "failed", str(exc)
        self._report("finishing", iteration)
        finish = FinishInput(
            task=self.task,
            instance_id=self.instance_id,
            answer=answer,
            outcome=outcome,
            iterations=iteration,
            used_sections=self.used_sections,
            usage=self.usage,
            sub_queries=self.sub_queries,
            started_at=self.started_at,
            ended_at=self.context.current_utc_datetime.isoformat(),
            error=error,
        )
        result = QueryResult.model_validate((yield self.context.call_activity_with_retry("finish_query", SANDBOX_RETRY, finish.model_dump())))
        self._report("failed" if result.failed else "done", iteration)
        if self.task.depth == 0:
            if result.failed:
                raise RuntimeError(result.error)
            return result.model_dump()
        answer_ref = TextRef(text=result.answer, key=result.answer_key)
        return SubAnswer(answer=answer_ref, failed=result.failed, usage=self.usage, sub_queries=self.sub_queries).model_dump()

    def _iterate(self, opened: OpenOutput) -> Steps:
        for iteration in range(1, self.task.max_iterations + 1):
            self._report("generating", iteration)
            code_step = self.step + 1
            generated = GenerateOutput.model_validate(
                (yield self._call("generate_step", MODEL_RETRY, iteration, **opened.model_dump()))
            )
            self._add_usage({str(self.task.depth): generated.usage})
            if not generated.has_code:
                if generated.final is not None:
                    return iteration, generated.final, "final"
                continue
            summary = yield from self._run_cell(iteration, code_step)
            self.used_sections = summary.used_sections or self.used_sections
            if summary.final is not None:
                return iteration, summary.final, "final"
        self._report("forcing an answer", self.task.max_iterations)
        forced = GenerateOutput.model_validate(
            (yield self._call("generate_step", MODEL_RETRY, self.task.max_iterations, forced=True, **opened.model_dump()))
        )
        self._add_usage({str(self.task.depth): forced.usage})
        return self.task.max_iterations, forced.final or TextRef(text=""), "forced"

    def _run_cell(self, iteration: int, code_step: int) -> Steps:
        cell_id = f"{self.instance_id}-{iteration}"
        self._report("executing", iteration)
        summary = CellSummary.model_validate(
            (yield self._call("execute_cell", SANDBOX_RETRY, iteration, cell_id=cell_id, code_step=code_step))
        )
        fanned_out = 0
        while summary.status == "suspended":
            answers = yield from self._fan_out(iteration, summary.pending, fanned_out)
            fanned_out += len(summary.pending)
            self._report("executing", iteration)
            summary = CellSummary.model_validate(
                (yield self._call("resume_cell", SANDBOX_RETRY, iteration, cell_id=cell_id, answers=answers))
            )
        return summary

    def _fan_out(self, iteration: int, pending: list[PendingRef], first: int) -> Steps:
        """Every pending request at once: sub-orchestrations below max depth, else single calls."""
        tasks = []
        for k, request in enumerate(pending, start=first):
            if request.kind == "rlm" and self.task.depth < self.task.max_depth:
                child = self.task.child(request.question, request.corpus_id or self.task.corpus_id, self.instance_id)
                tasks.append(self.context.call_sub_orchestrator(ORCHESTRATOR, child.model_dump(), f"{self.instance_id}-{iteration}-{k}"))
            else:
                tasks.append(
                    self._call(
                        "leaf_query",
                        MODEL_RETRY,
                        iteration,
                        request_id=request.id,
                        kind=request.kind,
                        question=request.question.model_dump(),
                        corpus_id=request.corpus_id,
                    )
                )
        self.progress.sub_queries_running += len(tasks)
        self._report("sub-queries", iteration)
        outputs = yield self.context.task_all(tasks)
        answers = {}
        for request, output in zip(pending, outputs, strict=True):
            sub = SubAnswer.model_validate(output)
            self._add_usage(sub.usage)
            self.sub_queries += 1 + sub.sub_queries
            answers[request.id] = sub.answer.model_dump()
        self.progress.sub_queries_running -= len(tasks)
        self.progress.sub_queries_done += len(tasks)
        return answers

    def _call(self, name: str, retry: df.RetryOptions, iteration: int, **extra: Any) -> Any:
        self.step += 1
        payload = {"task": self.task.model_dump(), "instance_id": self.instance_id, "step": self.step, "iteration": iteration, **extra}
        return self.context.call_activity_with_retry(name, retry, payload)

    def _add_usage(self, usage: dict[str, TokenUsage]) -> None:
        for depth, used in usage.items():
            self.usage[depth] = self.usage.get(depth, TokenUsage()) + used

    def _report(self, phase: str, iteration: int) -> None:
        self.progress.phase = phase
        self.progress.iteration = iteration
        self.progress.tokens = sum(u.prompt_tokens + u.completion_tokens for u in self.usage.values())
        self.context.set_custom_status(self.progress.model_dump())
