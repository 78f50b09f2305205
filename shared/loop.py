"""The RLM loop, written once: generate -> execute -> (fan out) -> resume, until the code
sets Final or the iteration budget runs out.

The loop is a generator that yields the work it wants done and receives the results,
so the same code runs as a Durable orchestration (rlm_activities.orchestrator, where
every yield is a checkpoint) and in-process (`run_local` below, for library use). It
must therefore stay deterministic: no clock but `runtime.now()`, no I/O; every effect
is a step (shared.steps) or a sub-query.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Generator, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.models import QueryRequest, QueryResult, TokenUsage
from shared.payloads import TextRef
from shared.starting import root_task
from shared.step_models import (
    CellSummary,
    FinishInput,
    GenerateOutput,
    OpenOutput,
    PendingRef,
    Progress,
    RlmTask,
    SubAnswer,
)
from shared.steps import STEPS, Parts

Steps = Generator[Any, Any, Any]


class LoopRuntime(Protocol):
    """What runs the loop: each method returns something the loop yields."""

    instance_id: str

    def now(self) -> datetime: ...

    def step(self, name: str, payload: dict[str, Any]) -> Any: ...

    def sub_query(self, task: RlmTask, instance_id: str) -> Any: ...

    def all(self, work: list[Any]) -> Any: ...

    def report(self, progress: Progress) -> None: ...


class QueryFailed(RuntimeError):
    """A root query that could not produce an answer; its trace says why."""


class RlmLoop:
    """One (sub-)query. Counters live here so each step gets a stable trace number."""

    def __init__(self, runtime: LoopRuntime, task: RlmTask) -> None:
        self.runtime = runtime
        self.task = task
        self.instance_id = runtime.instance_id
        self.started = runtime.now()
        self.started_at = self.started.isoformat()
        self.step = 0
        self.usage: dict[str, TokenUsage] = {}
        self.sub_queries = 0
        self.used_sections: list[str] = []
        self.progress = Progress(
            phase="starting", depth=task.depth, max_depth=task.max_depth, iteration=0, max_iterations=task.max_iterations,
            started_at=self.started_at, trace_id=task.trace_parent.trace_id,
        )  # fmt: skip

    def run(self) -> Steps:
        """The root returns a QueryResult (or raises QueryFailed); sub-queries return a
        SubAnswer, failed or not, so one bad branch does not sink the tree."""
        iteration = 0
        try:
            opened = OpenOutput.model_validate((yield self._step("open_session", 0)))
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
            ended_at=self.runtime.now().isoformat(),
            error=error,
        )
        result = QueryResult.model_validate((yield self.runtime.step("finish_query", finish.model_dump())))
        self._report("failed" if result.failed else "done", iteration)
        if self.task.depth == 0:
            if result.failed:
                raise QueryFailed(result.error)
            return result.model_dump()
        return SubAnswer(answer=result.answer_ref, failed=result.failed, usage=self.usage, sub_queries=self.sub_queries).model_dump()

    def _iterate(self, opened: OpenOutput) -> Steps:
        for iteration in range(1, self.task.max_iterations + 1):
            self._report("generating", iteration)
            code_step = self.step + 1
            generated = GenerateOutput.model_validate((yield self._step("generate_step", iteration, **opened.model_dump())))
            self._add_usage({str(self.task.depth): generated.usage})
            if not generated.has_code:
                if generated.final is not None:
                    return iteration, generated.final, "final"
                continue
            summary = yield from self._run_cell(iteration, code_step, generated.code_preview)
            self.used_sections = summary.used_sections or self.used_sections
            if summary.final is not None:
                return iteration, summary.final, "final"
        last = self.task.max_iterations
        self._report("forcing an answer", last)
        forced = GenerateOutput.model_validate((yield self._step("generate_step", last, forced=True, **opened.model_dump())))
        self._add_usage({str(self.task.depth): forced.usage})
        return last, forced.final or TextRef(text=""), "forced"

    def _run_cell(self, iteration: int, code_step: int, code: str | None) -> Steps:
        cell_id = f"{self.instance_id}-{iteration}"
        self.progress.code = code
        self._report("executing", iteration)
        summary = CellSummary.model_validate((yield self._step("execute_cell", iteration, cell_id=cell_id, code_step=code_step)))
        fanned_out = 0
        while summary.status == "suspended":
            answers = yield from self._fan_out(iteration, summary.pending, fanned_out)
            fanned_out += len(summary.pending)
            self._report("executing", iteration)
            summary = CellSummary.model_validate((yield self._step("resume_cell", iteration, cell_id=cell_id, answers=answers)))
        self.progress.code = None
        return summary

    def _fan_out(self, iteration: int, pending: list[PendingRef], first: int) -> Steps:
        """The pending requests in parallel, in waves of at most `max_parallel`."""
        answers: dict[str, Any] = {}
        width = self.task.max_parallel
        for start in range(0, len(pending), width):
            wave = pending[start : start + width]
            answers |= yield from self._wave(iteration, wave, first + start)
        return answers

    def _wave(self, iteration: int, pending: list[PendingRef], first: int) -> Steps:
        """Requests at once: sub-queries below max depth, else single calls."""
        work = []
        for k, request in enumerate(pending, start=first):
            if request.kind == "rlm" and self.task.depth < self.task.max_depth:
                child = self.task.child(request, self.instance_id)
                work.append(self.runtime.sub_query(child, f"{self.instance_id}-{iteration}-{k}"))
            else:
                leaf = request.model_dump(include={"kind", "question", "corpus_id", "requested_model", "model"})
                work.append(self._step("leaf_query", iteration, request_id=request.id, **leaf))
        self.progress.sub_queries_running += len(work)
        self._report("sub-queries", iteration, step=self.step)
        outputs = yield self.runtime.all(work)
        answers = {}
        for request, output in zip(pending, outputs, strict=True):
            sub = SubAnswer.model_validate(output)
            self._add_usage(sub.usage)
            self.sub_queries += 1 + sub.sub_queries
            answers[request.id] = sub.answer.model_dump()
        self.progress.sub_queries_running -= len(work)
        self.progress.sub_queries_done += len(work)
        return answers

    def _step(self, name: str, iteration: int, **extra: Any) -> Any:
        self.step += 1
        payload = {
            "task": self.task.model_dump(),
            "instance_id": self.instance_id,
            "step": self.step,
            "iteration": iteration,
            **extra,
        }
        return self.runtime.step(name, payload)

    def _add_usage(self, usage: dict[str, TokenUsage]) -> None:
        for depth, used in usage.items():
            self.usage[depth] = self.usage.get(depth, TokenUsage()) + used

    def _report(self, phase: str, iteration: int, *, step: int | None = None) -> None:
        """Progress as the next step starts (or, waiting on sub-queries, the step that asked for them)."""
        self.progress.phase = phase
        self.progress.iteration = iteration
        self.progress.step = self.step + 1 if step is None else step
        self.progress.tokens = sum(u.prompt_tokens + u.completion_tokens for u in self.usage.values())
        self.progress.cost = total_cost(self.usage.values())
        self.progress.elapsed_seconds = round((self.runtime.now() - self.started).total_seconds(), 3)
        self.runtime.report(self.progress.model_copy())


def total_cost(usage: Iterable[TokenUsage]) -> float | None:
    """What the calls cost, when any of them was priced."""
    costs = [cost for u in usage if (cost := u.model_dump().get("cost")) is not None]
    return sum(costs) if costs else None


class LocalRuntime:
    """Runs the loop in-process on asyncio: steps are called directly, fan-outs gathered."""

    def __init__(self, parts: Parts, instance_id: str, on_progress: Callable[[str, Progress], None] | None = None) -> None:
        self.parts = parts
        self.instance_id = instance_id
        self.on_progress = on_progress

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def step(self, name: str, payload: dict[str, Any]) -> Any:
        function = STEPS[name]
        if inspect.iscoroutinefunction(function):
            return await function(payload, self.parts)
        return await asyncio.to_thread(function, payload, self.parts)

    async def sub_query(self, task: RlmTask, instance_id: str) -> Any:
        return await drive(RlmLoop(LocalRuntime(self.parts, instance_id, self.on_progress), task).run())

    async def all(self, work: list[Any]) -> list[Any]:
        return list(await asyncio.gather(*work))

    def report(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(self.instance_id, progress)


async def drive(loop: Steps) -> Any:
    """Feed each yielded awaitable's result (or exception) back into the loop."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            work = loop.throw(error) if error is not None else loop.send(value)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = await work, None
        except Exception as exc:  # noqa: BLE001 - handed to the loop, which decides
            value, error = None, exc


async def run_local(
    request: QueryRequest,
    parts: Parts,
    *,
    instance_id: str,
    on_progress: Callable[[str, Progress], None] | None = None,
) -> QueryResult:
    """Answer a query in this process, without Durable Functions (no checkpoints)."""
    task = await asyncio.to_thread(root_task, request, instance_id, parts.settings, parts.store)
    output = await drive(RlmLoop(LocalRuntime(parts, instance_id, on_progress), task).run())
    return QueryResult.model_validate(output)
