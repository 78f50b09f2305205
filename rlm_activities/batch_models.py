"""Batch payloads: the request users send (queue message or HTTP body), the batch
orchestration's input, and the rows and summary it writes.

Only ids, counts and small summaries travel through Durable history; the questions and
expected answers of a batch stay in a blob (DESIGN section 5).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from shared.grading import JudgeScores, PreferenceTally, Verdict
from shared.models import NOT_BLANK, CorpusSource, NonBlank, QueryOptions, Strict, TokenUsage
from shared.payloads import TextRef
from shared.retrieval.models import Baseline, Strategy, StrategyTask
from shared.step_models import RlmTask

BATCH_ORCHESTRATOR = "rlm_batch"
BATCH_QUEUE = "rlm-batch"
BATCH_POISON_QUEUE = BATCH_QUEUE + "-poison"
# Query instance ids are "batch-{batch_id}-{n}" and must stay within ROOT_INSTANCE_ID's 64.
BATCH_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{3,47}$"
MAX_QUESTIONS = 1000
QUESTION_CHARS = 20_000
QUESTIONS_PAGE = 50
KIND = r"^[\w.-]{1,64}$"


def batch_instance_id(batch_id: str) -> str:
    return f"batch-{batch_id}"


def query_instance_id(batch_id: str, index: int, strategy: Strategy = "rlm") -> str:
    """The root query of question `index` (0-based) by one strategy; stable, so a replay
    finds it again. RLM queries keep the plain `batch-{id}-{n}`."""
    base = f"{batch_instance_id(batch_id)}-{index + 1}"
    return base if strategy == "rlm" else f"{base}-{strategy}"


def questions_key(batch_id: str) -> str:
    return f"batches/{batch_id}/questions.json"


def results_key(batch_id: str) -> str:
    return f"{batch_id}.jsonl"


def summary_key(batch_id: str) -> str:
    return f"{batch_id}.summary.json"


def preference_group(batch_id: str, index: int) -> str:
    """Where the judge's preferences between the strategies' answers to question `index` are kept."""
    return f"{batch_instance_id(batch_id)}-{index + 1}-preference"


class BatchQuestion(Strict):
    id: str | None = Field(None, min_length=1, max_length=200)
    question: NonBlank = Field(max_length=QUESTION_CHARS)
    expected: str | None = Field(None, max_length=QUESTION_CHARS)
    kind: str | None = Field(None, pattern=KIND, description="a label (e.g. needle, aggregation) the summary splits scores by")


def _questions_or_strings(schema: dict[str, Any]) -> None:
    """A plain string is a question too, as `_plain_strings_are_questions` reads it."""
    text = {"type": "string", "pattern": NOT_BLANK.pattern, "maxLength": QUESTION_CHARS}
    schema["items"] = {"anyOf": [text, schema["items"]]}


class BatchRequest(CorpusSource):
    """A batch: one corpus (exactly one source), questions, and options for every query."""

    batch_id: str | None = Field(None, pattern=BATCH_ID)
    questions: list[BatchQuestion] = Field(
        min_length=1,
        max_length=MAX_QUESTIONS,
        description="questions as objects or plain strings; ids must be unique",
        json_schema_extra=_questions_or_strings,
    )
    options: QueryOptions = Field(default_factory=QueryOptions)
    concurrency: int | None = Field(None, ge=1, le=64)
    strategies: list[Strategy] = Field(
        default_factory=lambda: ["rlm"], min_length=1, max_length=5, json_schema_extra={"uniqueItems": True}
    )
    # The LLM judge grades every answer; by default only when strategies are compared.
    judge: bool | None = None

    @field_validator("strategies")
    @classmethod
    def _each_strategy_once(cls, value: list[Strategy]) -> list[Strategy]:
        if len(set(value)) != len(value):
            raise ValueError("name each strategy once")
        return value

    @property
    def judged(self) -> bool:
        return self.judge if self.judge is not None else len(self.strategies) > 1

    @field_validator("questions", mode="before")
    @classmethod
    def _plain_strings_are_questions(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"question": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _unique_question_ids(self) -> BatchRequest:
        ids = [q.id for q in self.questions if q.id is not None]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"question ids must be unique; repeated: {duplicates[:10]}")
        return self

    def content_id(self) -> str:
        """A batch id derived from the content, so a redelivered message maps to one batch."""
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()[:32]


class StoredQuestion(BaseModel):
    """A question as kept in the batch's blob, its row id filled in."""

    id: str
    question: str
    expected: str | None = None
    kind: str | None = None


class BatchTask(BaseModel):
    """Input of the batch orchestration: where the questions are and how to run each, by
    each strategy (`baselines` holds the templates of the retrieval ones)."""

    batch_id: str
    count: int = Field(ge=1)
    concurrency: int = Field(ge=1)
    template: RlmTask
    strategies: list[Strategy] = Field(default_factory=lambda: ["rlm"])
    baselines: dict[Baseline, StrategyTask] = Field(default_factory=dict)
    judge_model: str | None = None


class PageInput(BaseModel):
    batch_id: str
    start: int = Field(ge=0)
    count: int = Field(ge=1)


class PageOutput(BaseModel):
    questions: list[TextRef]
    expected: list[TextRef | None] = Field(default_factory=list)  # the judge's reference in its preferences


class WriteInput(BaseModel):
    """Errors only for queries that failed, by instance id (short; a stored result's error wins)."""

    batch_id: str
    count: int
    strategies: list[Strategy] = Field(default_factory=lambda: ["rlm"])
    errors: dict[str, str] = Field(default_factory=dict)
    index_usage: TokenUsage = Field(default_factory=TokenUsage)
    started_at: str
    ended_at: str


class BatchProgress(BaseModel):
    """Custom status of a batch: small whatever the batch size."""

    phase: str
    total: int
    done: int = 0
    failed: int = 0
    running: int = 0


class BatchRow(BaseModel):
    """One line of results/{batch_id}.jsonl: one question answered by one strategy."""

    id: str
    strategy: Strategy = "rlm"
    kind: str | None = None
    question: str
    answer: str | None
    expected: str | None
    correct: bool | None
    f1: float | None = None
    forced: bool = False
    iterations: int | None
    usage: TokenUsage
    sources: list[str] = Field(default_factory=list)
    duration_seconds: float | None
    instance_id: str
    judge: JudgeScores | None = None
    # The judge's preference between this answer and each other strategy's to the same question.
    preference: dict[Strategy, Verdict] = Field(default_factory=dict)
    error: str | None = None


class Latency(BaseModel):
    mean: float
    p50: float
    p95: float
    max: float


class JudgeMeans(BaseModel):
    """Mean judge scores (1-5) over the answers the judge scored."""

    relevance: float | None = None
    groundedness: float | None = None
    coherence: float | None = None


class KindScores(BaseModel):
    """Exact match and F1 over the questions of one kind that have an expected answer."""

    count: int
    accuracy: float | None
    f1: float | None


class StrategySummary(BaseModel):
    """One strategy's share of a batch."""

    count: int
    answered: int
    failed: int
    accuracy: float | None
    f1: float | None
    judge: JudgeMeans | None
    preference: PreferenceTally | None = None
    kinds: dict[str, KindScores] | None = None
    latency_seconds: Latency | None
    cost: float | None = None
    usage: TokenUsage


class BatchSummary(BaseModel):
    batch_id: str
    count: int
    answered: int
    failed: int
    with_expected: int
    correct: int
    accuracy: float | None
    f1: float | None = None
    kinds: dict[str, KindScores] | None = None
    usage: TokenUsage
    cost: float | None = None  # of every query, when RLM_PRICES prices their models
    judge_usage: TokenUsage = Field(default_factory=TokenUsage)  # the judge's calls, with their cost
    index_usage: TokenUsage = Field(default_factory=TokenUsage)  # embedding the corpus for the baselines
    total_tokens: int
    latency_seconds: Latency | None
    started_at: str
    ended_at: str
    results: str
    summary: str
    strategies: dict[str, StrategySummary] | None = None
