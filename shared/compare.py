"""Comparing strategies on one question: the request, the parent orchestration's input,
and the side-by-side result with each answer's latency, tokens, sources and scores."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.config import Settings
from shared.grading import JudgeScores, exact_match, token_f1
from shared.models import QueryRequest, QueryResult, Source, TokenUsage
from shared.payloads import TextRef
from shared.retrieval.loop import strategy_task
from shared.retrieval.models import STRATEGIES, IndexOutput, Strategy, StrategyTask
from shared.starting import root_task, store_request_corpus
from shared.step_models import RlmTask
from shared.storage.base import BlobStore
from shared.telemetry.context import TraceParent, query_span_id, start_trace

COMPARE_ORCHESTRATOR = "compare_orchestrator"
# Children are "{compare_id}-{strategy}" and must stay within a root instance id's 64 characters.
COMPARE_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{3,47}$"
# The comparison is the orchestration's output, kept in history: answers and source lists
# are cut there (the strategy's own result has them whole).
ANSWER_INLINE = 4000
SOURCES_INLINE = 50


def strategy_instance_id(base: str, strategy: Strategy) -> str:
    return f"{base}-{strategy}"


class CompareRequest(QueryRequest):
    """A question for several strategies at once, optionally with the answer expected."""

    strategies: list[Strategy] = Field(
        default_factory=lambda: list(STRATEGIES),
        min_length=1,
        max_length=len(STRATEGIES),
        json_schema_extra={"uniqueItems": True},
    )
    expected: str | None = Field(None, min_length=1, max_length=20_000)
    judge: bool = True

    @field_validator("strategies")
    @classmethod
    def _each_once(cls, value: list[Strategy]) -> list[Strategy]:
        if len(set(value)) != len(value):
            raise ValueError("name each strategy once")
        return value


class CompareTask(BaseModel):
    """Input of the compare orchestration: every child's input, resolved once at the start."""

    compare_id: str = Field(pattern=COMPARE_ID)
    corpus_id: str
    strategies: list[Strategy]
    expected: TextRef | None = None
    judge_model: str | None = None
    rlm: RlmTask | None = None
    baselines: list[StrategyTask] = Field(default_factory=list)
    trace: TraceParent | None = None  # the comparison's trace: every strategy's spans join it

    @property
    def strategies_trace(self) -> TraceParent | None:
        """What the strategies' tasks carry: the comparison's trace, its span their parent."""
        if self.trace is None:
            return None
        span_id = query_span_id(self.trace.trace_id, self.compare_id)
        return self.trace.model_copy(update={"parent_span_id": f"{span_id:016x}"})


def compare_task(
    request: CompareRequest, compare_id: str, settings: Settings, store: BlobStore, trace: TraceParent | None = None
) -> CompareTask:
    """The comparison's input; its trace is `trace` (an incoming request's), else one started here.

    Raises CorpusError for an unknown corpus id.
    """
    corpus_id = store_request_corpus(request, store)
    request = request.model_copy(update={"corpus": None, "documents": None, "corpus_id": corpus_id})
    task = CompareTask(
        compare_id=compare_id,
        corpus_id=corpus_id,
        strategies=request.strategies,
        expected=TextRef.of(request.expected, store) if request.expected else None,
        judge_model=settings.judge if request.judge else None,
        trace=trace or start_trace(),
    )
    children = task.strategies_trace
    for strategy in request.strategies:
        instance_id = strategy_instance_id(compare_id, strategy)
        if strategy == "rlm":
            task.rlm = root_task(request, instance_id, settings, store, children)
        else:
            task.baselines.append(strategy_task(request, strategy, instance_id, settings, store, children))
    return task


class Scores(BaseModel):
    """Exact match and F1 need an expected answer; the judge's scores need the judge."""

    exact_match: bool | None = None
    f1: float | None = None
    relevance: int | None = None
    groundedness: int | None = None
    coherence: int | None = None


class StrategyOutcome(BaseModel):
    strategy: Strategy
    answer: str | None
    answer_truncated: bool = False
    sources: list[Source] = Field(default_factory=list)
    sources_total: int = 0
    latency_seconds: float | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost: float | None = None
    scores: Scores = Field(default_factory=Scores)
    instance_id: str
    error: str | None = None


class Preference(BaseModel):
    """The judge's pick between two strategies' answers: one of them, or "tie"."""

    a: Strategy
    b: Strategy
    winner: Strategy | Literal["tie"]


class CompareResult(BaseModel):
    question: str
    expected: str | None
    strategies: list[StrategyOutcome]
    preference: list[Preference] = Field(default_factory=list)
    judge_usage: TokenUsage = Field(default_factory=TokenUsage)
    index: IndexOutput | None = None
    cost: float | None = None  # of everything: the strategies, the index build and the judge, when priced
    trace_id: str | None = None  # the OpenTelemetry trace every strategy's spans joined
    started_at: str
    ended_at: str


class CompareProgress(BaseModel):
    """Custom status: each strategy's state, small whatever the answers."""

    phase: str
    strategies: dict[str, str]


def outcome(
    strategy: Strategy,
    instance_id: str,
    result: QueryResult | None,
    answer: str | None,
    error: str | None,
    expected: str | None,
    judged: JudgeScores | None,
) -> StrategyOutcome:
    """One strategy's row of the comparison, scored against the expected answer if given."""
    failed = result is None or result.failed or error is not None
    if failed:
        error = (result.error if result else None) or error or "the strategy ended without a result"
        answer = None
    scores = Scores(**(judged.model_dump() if judged else {}))
    if expected is not None:
        scores.exact_match = bool(answer) and exact_match(answer or "", expected)
        scores.f1 = token_f1(answer, expected) if answer else 0.0
    shown = answer[:ANSWER_INLINE] if answer is not None else None
    usage = sum(result.usage.values(), TokenUsage()) if result else TokenUsage()
    return StrategyOutcome(
        strategy=strategy,
        answer=shown,
        answer_truncated=answer is not None and len(answer) > ANSWER_INLINE,
        sources=result.sources[:SOURCES_INLINE] if result and not failed else [],
        sources_total=len(result.sources) if result and not failed else 0,
        latency_seconds=result.duration_seconds if result else None,
        usage=usage,
        cost=usage.cost,
        scores=scores,
        instance_id=instance_id,
        error=error if failed else None,
    )
