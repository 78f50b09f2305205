"""Inputs and outputs of the baselines' steps: ids, references and small summaries only,
as for the RLM loop (Durable history keeps every one of them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.models import Source, TokenUsage
from shared.payloads import TextRef
from shared.telemetry.context import TraceParent

Strategy = Literal["rlm", "keyword", "vector", "hybrid", "agentic"]
Baseline = Literal["keyword", "vector", "hybrid", "agentic"]
STRATEGIES: tuple[Strategy, ...] = ("rlm", "keyword", "vector", "hybrid", "agentic")
SearchMode = Literal["keyword", "vector", "hybrid"]
# The indexes each baseline searches; the passage file (with its keyword index) always.
NEEDS_VECTORS: frozenset[str] = frozenset({"vector", "hybrid", "agentic"})
# Baseline instance ids are a base id plus "-{strategy}"; the base follows ROOT_INSTANCE_ID.
STRATEGY_INSTANCE_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{3,79}$"


def search_mode(strategy: Baseline) -> SearchMode:
    """Agentic retrieval searches like hybrid; it differs in rewriting the query."""
    return "hybrid" if strategy == "agentic" else strategy


class StrategyTask(BaseModel):
    """One baseline answering one question: the input of its orchestration."""

    strategy: Baseline
    question: TextRef
    corpus_id: str
    root_id: str = Field(pattern=STRATEGY_INSTANCE_ID)
    top_k: int = Field(ge=1)
    max_rounds: int = Field(ge=1)
    model: str
    rewrite_model: str
    trace: TraceParent | None = None  # a comparison's trace; else the baseline's own

    @property
    def trace_parent(self) -> TraceParent:
        return self.trace or TraceParent.of_root(self.root_id)


class StrategyStep(BaseModel):
    task: StrategyTask
    instance_id: str
    step: int
    round: int


class IndexOutput(BaseModel):
    passages: int
    context_chars: int
    built: list[str] = Field(default_factory=list)
    reused: list[str] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)


class SearchInput(StrategyStep):
    query: TextRef


class SearchOutput(BaseModel):
    hits: list[int]
    usage: TokenUsage = Field(default_factory=TokenUsage)


class RewriteInput(StrategyStep):
    queries: list[str]
    passages: list[int]


class RewriteOutput(BaseModel):
    """The next query, or None when the model found the passages enough."""

    query: str | None
    usage: TokenUsage


class AnswerInput(StrategyStep):
    passages: list[int]


class AnswerOutput(BaseModel):
    answer: TextRef
    sources: list[Source]
    usage: TokenUsage


class StrategyFinishInput(BaseModel):
    task: StrategyTask
    instance_id: str
    answer: TextRef
    outcome: Literal["final", "failed"]
    rounds: int
    sources: list[Source]
    usage: dict[str, TokenUsage]
    started_at: str
    ended_at: str
    error: str | None = None


class PrepareInput(BaseModel):
    """Build a corpus's indexes before many queries use them (a batch, a compare)."""

    corpus_id: str
    strategies: list[Strategy]
    trace: TraceParent | None = None  # the span of the comparison (or batch) it builds for
