"""A baseline's run, written once: index -> search (-> rewrite -> search, for agentic) ->
answer -> finish. Like the RLM loop it is a generator yielding the steps it wants run, so
it runs as a Durable orchestration (rlm_activities.retrieval_orchestrator) and in-process
(`run_strategy_local`), and must stay deterministic."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.config import Settings
from shared.loop import QueryFailed, Steps, drive
from shared.models import QueryRequest, QueryResult, TokenUsage
from shared.payloads import TextRef
from shared.retrieval.fusion import reciprocal_rank_fusion
from shared.retrieval.models import (
    AnswerOutput,
    Baseline,
    IndexOutput,
    RewriteOutput,
    SearchOutput,
    StrategyFinishInput,
    StrategyTask,
)
from shared.retrieval.steps import STEPS, RetrievalParts
from shared.starting import store_request_corpus
from shared.step_models import QUESTION_INLINE, Progress
from shared.storage.base import BlobStore
from shared.telemetry.context import TraceParent


def strategy_task(
    request: QueryRequest,
    strategy: Baseline,
    instance_id: str,
    settings: Settings,
    store: BlobStore,
    trace: TraceParent | None = None,
) -> StrategyTask:
    """A baseline's input from the same QueryRequest an RLM query takes; in the trace `trace`
    (a comparison's), else in one of its own."""
    options = request.options
    return StrategyTask(
        strategy=strategy,
        question=TextRef.of(request.question, store, limit=QUESTION_INLINE),
        corpus_id=store_request_corpus(request, store),
        root_id=instance_id,
        top_k=settings.retrieval_top_k,
        max_rounds=settings.agentic_max_rounds if strategy == "agentic" else 1,
        model=options.root_model or settings.root_model,
        rewrite_model=options.sub_model or settings.sub_model,
        trace=trace,
    )


class StrategyRuntime(Protocol):
    """What runs a baseline: each method returns something the loop yields."""

    instance_id: str

    def now(self) -> datetime: ...

    def step(self, name: str, payload: dict[str, Any]) -> Any: ...

    def report(self, progress: Progress) -> None: ...


class RetrievalLoop:
    """One baseline answering one question; counters give each step a stable trace number."""

    def __init__(self, runtime: StrategyRuntime, task: StrategyTask) -> None:
        self.runtime = runtime
        self.task = task
        self.instance_id = runtime.instance_id
        self.started_at = runtime.now().isoformat()
        self.step = 0
        self.chat = TokenUsage()
        self.embedding = TokenUsage()
        self.index = TokenUsage()
        self.progress = Progress(phase="starting", depth=0, max_depth=0, iteration=0, max_iterations=task.max_rounds)

    def run(self) -> Steps:
        """Returns a QueryResult; raises QueryFailed (after recording the failure) like an RLM root."""
        rounds = 0
        answer, outcome, error, sources = TextRef(text=""), "final", None, []
        try:
            self._report("indexing", 0)
            opened = IndexOutput.model_validate((yield self._step("retrieval_index", 0)))
            self.index += opened.usage
            rounds, answer, sources = yield from self._retrieve_and_answer()
        except Exception as exc:  # noqa: BLE001 - any failure becomes a recorded, failed result
            answer, outcome, error = TextRef(text=f"[query failed: {exc}]"), "failed", str(exc)
        self._report("finishing", rounds)
        finish = StrategyFinishInput(
            task=self.task,
            instance_id=self.instance_id,
            answer=answer,
            outcome=outcome,
            rounds=rounds,
            sources=sources,
            usage=self._usage(),
            started_at=self.started_at,
            ended_at=self.runtime.now().isoformat(),
            error=error,
        )
        result = QueryResult.model_validate((yield self.runtime.step("retrieval_finish", finish.model_dump())))
        self._report("failed" if result.failed else "done", rounds)
        if result.failed:
            raise QueryFailed(result.error)
        return result.model_dump()

    def _retrieve_and_answer(self) -> Steps:
        queries: list[str] = []
        rankings: list[list[int]] = []
        query = self.task.question
        for round_ in range(1, self.task.max_rounds + 1):
            self._report("retrieving", round_)
            found = SearchOutput.model_validate((yield self._step("retrieval_search", round_, query=query.model_dump())))
            self.embedding += found.usage
            rankings.append(found.hits)
            if round_ == self.task.max_rounds:
                break
            self._report("rewriting the query", round_)
            best = self._top(rankings)
            rewrite = RewriteOutput.model_validate(
                (yield self._step("retrieval_rewrite", round_, queries=queries, passages=best))
            )
            self.chat += rewrite.usage
            if rewrite.query is None:
                break
            queries.append(rewrite.query)
            query = TextRef(text=rewrite.query)
        self._report("answering", len(rankings))
        answered = AnswerOutput.model_validate(
            (yield self._step("retrieval_answer", len(rankings), passages=self._top(rankings)))
        )
        self.chat += answered.usage
        return len(rankings), answered.answer, answered.sources

    def _top(self, rankings: list[list[int]]) -> list[int]:
        """The passages to read: one search's ranking, or the rounds' rankings fused."""
        if len(rankings) == 1:
            return rankings[0][: self.task.top_k]
        return [i for i, _ in reciprocal_rank_fusion(rankings, self.task.top_k)]

    def _usage(self) -> dict[str, TokenUsage]:
        """Chat calls at depth "0" as for RLM; query embeddings and any index build apart."""
        usage = {"0": self.chat}
        if self.embedding.model_calls:
            usage["embedding"] = self.embedding
        if self.index.model_calls:
            usage["index"] = self.index
        return usage

    def _step(self, name: str, round_: int, **extra: Any) -> Any:
        self.step += 1
        payload = {"task": self.task.model_dump(), "instance_id": self.instance_id, "step": self.step, "round": round_, **extra}
        return self.runtime.step(name, payload)

    def _report(self, phase: str, round_: int) -> None:
        self.progress.phase = phase
        self.progress.iteration = round_
        self.progress.tokens = sum(u.prompt_tokens + u.completion_tokens for u in (self.chat, self.embedding))
        self.runtime.report(self.progress.model_copy())


class _LocalRuntime:
    """Runs a baseline in-process: steps are called directly."""

    def __init__(self, parts: RetrievalParts, instance_id: str) -> None:
        self.parts = parts
        self.instance_id = instance_id

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def step(self, name: str, payload: dict[str, Any]) -> Any:
        function = STEPS[name]
        if inspect.iscoroutinefunction(function):
            return await function(payload, self.parts)
        return await asyncio.to_thread(function, payload, self.parts)

    def report(self, progress: Progress) -> None:
        """Nobody watches an in-process run."""


async def run_strategy_local(
    request: QueryRequest, strategy: Baseline, parts: RetrievalParts, *, instance_id: str
) -> QueryResult:
    """Answer a query with one baseline in this process, without Durable Functions."""
    task = await asyncio.to_thread(strategy_task, request, strategy, instance_id, parts.settings, parts.store)
    return QueryResult.model_validate(await drive(RetrievalLoop(_LocalRuntime(parts, instance_id), task).run()))
