"""The RLM loop, written once: generate -> execute -> (fan out) -> resume, until the code
sets Final or the iteration budget runs out.

The loop is a generator that yields the work it wants done and receives the results,
so the same code runs as a Durable orchestration (rlm_activities.orchestrator, where
every yield is a checkpoint) and in-process (`run_local` below, for library use). It
must therefore stay deterministic: no clock but `runtime.now()`, no I/O; every effect
is a step (shared.steps) or a sub-query.

Budgets (shared.budget) are checked between steps; the deadline is a timer of the
runtime (a durable timer under Durable) raced with each step, so no clock decides it.

A runtime that replays a history (Durable) bounds it: once a generation has scheduled
`tasks_per_generation` tasks, the loop continues as new between two iterations, carrying
its counters (LoopState), so every episode replays a short history however long the query.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.models import ForcedReason, QueryRequest, QueryResult, TokenUsage
from shared.payloads import TextRef
from shared.prompts import FORCED_REASONS
from shared.starting import root_task
from shared.step_models import (
    CellSummary,
    FinishInput,
    GenerateOutput,
    LoopInput,
    LoopState,
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
    #: Tasks a generation may schedule before the loop continues as new; None: it never does.
    tasks_per_generation: int | None

    def now(self) -> datetime: ...

    def step(self, name: str, payload: dict[str, Any]) -> Any: ...

    def sub_query(self, task: RlmTask, instance_id: str) -> Any: ...

    def all(self, work: list[Any]) -> Any: ...

    def timer(self, fire_at: datetime) -> Any:
        """A timer firing at `fire_at` (a durable timer is scheduled by the first race it joins)."""
        ...

    def race(self, work: Any, timer: Any) -> Any:
        """Done when `work` or `timer` is; yielding `work` afterwards still waits for the work."""
        ...

    def fired(self, timer: Any) -> bool: ...

    def cancel(self, timer: Any) -> None: ...

    def error_text(self, error: Exception) -> str:
        """What a failed step says, without the stack trace the runtime may attach."""
        ...

    def report(self, progress: Progress) -> None: ...

    def continue_as_new(self, start: LoopInput) -> None:
        """End this generation; the next one starts from `start` with an empty history."""
        ...


class QueryFailed(RuntimeError):
    """A root query that could not produce an answer; its trace says why."""


class RlmLoop:
    """One (sub)query, or one generation of it. Counters live here so each step gets a stable
    trace number; `state` is where the previous generation stopped."""

    def __init__(self, runtime: LoopRuntime, task: RlmTask, state: LoopState | None = None) -> None:
        self.runtime = runtime
        self.task = task
        self.instance_id = runtime.instance_id
        self.started = datetime.fromisoformat(state.started_at) if state else runtime.now()
        self.started_at = self.started.isoformat()
        self.budget = task.budget.started(self.started)
        self.deadline: Any = None  # the runtime's timer, when there is a deadline
        self.opened = state.opened if state else None
        self.iteration = state.iteration if state else 0  # the iteration running, or the last one run
        self.step = state.step if state else 0
        self.tasks = 0  # tasks this generation scheduled: steps and sub-queries
        self.usage: dict[str, TokenUsage] = dict(state.usage) if state else {}
        self.last_call = state.last_call if state else TokenUsage()  # the latest model call: the estimate of the next
        self.forced_reason: ForcedReason | None = None
        self.sub_queries = state.sub_queries if state else 0
        self.used_sections: list[str] = list(state.used_sections) if state else []
        self.progress = Progress(
            phase="starting", depth=task.depth, max_depth=task.max_depth, iteration=self.iteration,
            max_iterations=task.max_iterations, started_at=self.started_at, trace_id=task.trace_parent.trace_id,
            max_tokens=self.budget.tokens, max_cost=self.budget.cost,
            deadline=self.budget.deadline.isoformat() if self.budget.deadline else None,
            sub_queries_done=state.sub_queries_done if state else 0,
        )  # fmt: skip

    def run(self) -> Steps:
        """The root returns a QueryResult (or raises QueryFailed); sub-queries return a
        SubAnswer, failed or not, so one bad branch does not sink the tree. A generation that
        continues as new returns None: the last generation's value is the orchestration's."""
        iteration = self.iteration
        if self.budget.deadline is not None:
            self.deadline = self.runtime.timer(self.budget.deadline)
        try:
            ended = yield from self._iterate()
            if ended is None:
                self.runtime.continue_as_new(LoopInput(task=self.task.model_copy(update={"budget": self.budget}),
                                                       state=self._state()))  # fmt: skip
                return None
            iteration, answer, outcome = ended
            error = None
        except Exception as exc:  # noqa: BLE001 - any failure becomes a recorded, failed result
            error = self.runtime.error_text(exc)
            answer, outcome = TextRef(text=f"[query failed: {error}]"), "failed"
        self._report("finishing", iteration)
        finish = FinishInput(
            task=self.task,
            instance_id=self.instance_id,
            answer=answer,
            outcome=outcome,
            forced_reason=self.forced_reason if outcome == "forced" else None,
            iterations=iteration,
            used_sections=self.used_sections,
            usage=self.usage,
            sub_queries=self.sub_queries,
            started_at=self.started_at,
            ended_at=self.runtime.now().isoformat(),
            error=error,
        )
        result = QueryResult.model_validate((yield self.runtime.step("finish_query", finish.model_dump())))
        if self.deadline is not None and not self.runtime.fired(self.deadline):
            self.runtime.cancel(self.deadline)
        self._report("failed" if result.failed else "done", iteration)
        if self.task.depth == 0:
            if result.failed:
                raise QueryFailed(result.error)
            return result.model_dump()
        return SubAnswer(answer=result.answer_ref, failed=result.failed, usage=self.usage, sub_queries=self.sub_queries).model_dump()

    def _iterate(self) -> Steps:
        """(iterations, answer, outcome) once the query ends; None when this generation is
        full and the loop should continue as new before the next iteration."""
        for iteration in range(self.iteration + 1, self.task.max_iterations + 1):
            if (reason := self._spent()) is not None:
                return (yield from self._force(iteration - 1, reason))
            if self._generation_full():
                return None
            self.iteration = iteration
            generated = GenerateOutput.model_validate((yield from self._generate(iteration, "generating")))
            code_step = self.step
            self.last_call = generated.usage
            self._add_usage({str(self.task.depth): generated.usage})
            if not generated.has_code:
                if generated.final is not None:
                    return iteration, generated.final, "final"
                continue
            summary = yield from self._run_cell(iteration, code_step, generated.code_preview)
            self.used_sections = summary.used_sections or self.used_sections
            if summary.final is not None:
                return iteration, summary.final, "final"
        return (yield from self._force(self.task.max_iterations, self._spent() or "iterations"))

    def _generate(self, iteration: int, phase: str, forced: ForcedReason | None = None) -> Steps:
        """One model call. The first runs beside the session's opening (the sandbox starting,
        the corpus loading), since it needs nothing from it; the code it writes waits for both."""
        if self.opened is not None:
            self._report(phase, iteration)
            return (yield from self._wait(self._step("generate_step", iteration, opened=self.opened.model_dump(), forced=forced)))
        self._report(phase, iteration, step=self.step + 2)  # the call's step; the opening's is the one before
        opening = self._step("open_session", 0)
        generating = self._step("generate_step", iteration, forced=forced)
        opened, generated = yield from self._wait(self.runtime.all([opening, generating]))
        self.opened = OpenOutput.model_validate(opened)
        return generated

    def _force(self, iteration: int, reason: ForcedReason) -> Steps:
        """One last call turns the transcript into the best answer it can."""
        self.forced_reason = reason
        forced = GenerateOutput.model_validate((yield from self._generate(iteration, "forcing an answer", reason)))
        self._add_usage({str(self.task.depth): forced.usage})
        return iteration, forced.final or TextRef(text=""), "forced"

    def _run_cell(self, iteration: int, code_step: int, code: str | None) -> Steps:
        """Execute, then fan out and resume while the cell waits on requests. Once the budget
        is spent, the waiting requests are answered that they were not run, once, so the cell
        can finish and show the model what it did; a cell that asks again is left waiting."""
        cell_id = f"{self.instance_id}-{iteration}"
        self.progress.code = code
        self._report("executing", iteration)
        step = self._step("execute_cell", iteration, cell_id=cell_id, code_step=code_step)
        summary = CellSummary.model_validate((yield from self._wait(step)))
        fanned_out = 0
        told_spent = False
        while summary.status == "suspended":
            if (reason := self._spent()) is not None:
                if told_spent:
                    break
                answers, told_spent = self._not_run(summary.pending, reason), True
            else:
                answers = yield from self._fan_out(iteration, summary.pending, fanned_out)
            fanned_out += len(summary.pending)
            self._report("executing", iteration)
            step = self._step("resume_cell", iteration, cell_id=cell_id, answers=answers)
            summary = CellSummary.model_validate((yield from self._wait(step)))
        self.progress.code = None
        return summary

    def _fan_out(self, iteration: int, pending: list[PendingRef], first: int) -> Steps:
        """The pending requests in parallel, in waves of at most `max_parallel`; waves after
        the budget ran out are not run."""
        answers: dict[str, Any] = {}
        width = self.task.max_parallel
        for start in range(0, len(pending), width):
            wave = pending[start : start + width]
            if (reason := self._spent()) is not None:
                answers |= self._not_run(wave, reason)
                continue
            answers |= yield from self._wave(iteration, wave, first + start, waiting=len(pending) - start)
        return answers

    def _wave(self, iteration: int, pending: list[PendingRef], first: int, waiting: int) -> Steps:
        """Requests at once: sub-queries below max depth, each with its share of the budget
        (split between the `waiting` requests and this loop), else single calls."""
        share = self.budget.share(self._used(), waiting + 1, self.runtime.now())
        work = []
        for k, request in enumerate(pending, start=first):
            if request.kind == "rlm" and self.task.depth < self.task.max_depth:
                child = self.task.child(request, self.instance_id, share)
                work.append(self.runtime.sub_query(child, f"{self.instance_id}-{iteration}-{k}"))
                self.tasks += 1
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

    def _not_run(self, pending: list[PendingRef], reason: ForcedReason) -> dict[str, Any]:
        return {r.id: TextRef(text=f"[{r.kind}_query was not run: {FORCED_REASONS[reason]}]").model_dump() for r in pending}

    def _wait(self, work: Any) -> Steps:
        """The result of `work`, raced with the deadline so it is noticed when it passes;
        the step in flight is still awaited, so its result and usage are kept."""
        if self.deadline is not None and not self.runtime.fired(self.deadline):
            yield self.runtime.race(work, self.deadline)
        return (yield work)

    def _spent(self) -> ForcedReason | None:
        """Why the budget allows no more work; once it is spent it stays spent."""
        if self.forced_reason is None:
            passed = self.deadline is not None and self.runtime.fired(self.deadline)
            self.forced_reason = self.budget.spent(self._used(), self.last_call, passed)
        return self.forced_reason

    def _generation_full(self) -> bool:
        limit = self.runtime.tasks_per_generation
        return limit is not None and self.tasks >= limit

    def _state(self) -> LoopState:
        assert self.opened is not None
        return LoopState(
            iteration=self.iteration, step=self.step, opened=self.opened, started_at=self.started_at,
            usage=self.usage, last_call=self.last_call, sub_queries=self.sub_queries,
            sub_queries_done=self.progress.sub_queries_done, used_sections=self.used_sections,
        )  # fmt: skip

    def _step(self, name: str, iteration: int, **extra: Any) -> Any:
        self.step += 1
        self.tasks += 1
        payload = {
            "task": self.task.model_dump(),
            "instance_id": self.instance_id,
            "step": self.step,
            "iteration": iteration,
            **extra,
        }
        return self.runtime.step(name, payload)

    def _used(self) -> TokenUsage:
        return sum(self.usage.values(), TokenUsage())

    def _add_usage(self, usage: dict[str, TokenUsage]) -> None:
        for depth, used in usage.items():
            self.usage[depth] = self.usage.get(depth, TokenUsage()) + used

    def _report(self, phase: str, iteration: int, *, step: int | None = None) -> None:
        """Progress as the next step starts (or, waiting on sub-queries, the step that asked for them)."""
        used = self._used()
        self.progress.phase = phase
        self.progress.iteration = iteration
        self.progress.step = self.step + 1 if step is None else step
        self.progress.tokens = used.total_tokens
        self.progress.cached_tokens = used.cached_tokens
        self.progress.cost = used.cost
        self.progress.forced_reason = self.forced_reason
        self.progress.elapsed_seconds = round((self.runtime.now() - self.started).total_seconds(), 3)
        self.runtime.report(self.progress.model_copy())


class LocalRuntime:
    """Runs the loop in-process on asyncio: steps are called directly, fan-outs gathered."""

    tasks_per_generation = None  # nothing is replayed, so there is no history to bound

    def __init__(self, parts: Parts, instance_id: str, on_progress: Callable[[str, Progress], None] | None = None) -> None:
        self.parts = parts
        self.instance_id = instance_id
        self.on_progress = on_progress

    def now(self) -> datetime:
        return datetime.now(UTC)

    def step(self, name: str, payload: dict[str, Any]) -> asyncio.Future[Any]:
        """A task, not a coroutine: a step raced with the deadline is awaited twice."""
        function = STEPS[name]
        if inspect.iscoroutinefunction(function):
            return asyncio.ensure_future(function(payload, self.parts))
        return asyncio.ensure_future(asyncio.to_thread(function, payload, self.parts))

    async def sub_query(self, task: RlmTask, instance_id: str) -> Any:
        return await drive(RlmLoop(LocalRuntime(self.parts, instance_id, self.on_progress), task).run())

    def all(self, work: list[Any]) -> asyncio.Future[list[Any]]:
        """A future, not a coroutine: work raced with the deadline is awaited twice."""
        return asyncio.gather(*work)

    def timer(self, fire_at: datetime) -> asyncio.Task[None]:
        return asyncio.ensure_future(asyncio.sleep(max((fire_at - self.now()).total_seconds(), 0.0)))

    async def race(self, work: asyncio.Future[Any], timer: asyncio.Task[None]) -> None:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)

    def fired(self, timer: asyncio.Task[None]) -> bool:
        return timer.done() and not timer.cancelled()

    def cancel(self, timer: asyncio.Task[None]) -> None:
        timer.cancel()

    def error_text(self, error: Exception) -> str:
        return str(error)

    def report(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(self.instance_id, progress)

    def continue_as_new(self, start: LoopInput) -> None:
        raise NotImplementedError("the in-process runtime keeps no history, so its loop never continues as new")


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
