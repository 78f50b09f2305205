"""Pydantic models at every boundary: requests, options, sandbox cells, steps, results."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.bounds import (
    CostBudget,
    DeadlineSeconds,
    ModelName,
    RequestDepth,
    RequestIterations,
    RequestSubIterations,
    RequestTruncateChars,
    TokenBudget,
)
from shared.config import ModelPrice
from shared.payloads import TextRef

SHA256_HEX = r"^[0-9a-f]{64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


NOT_BLANK = re.compile(r"\S")


def _not_blank(value: str) -> str:
    if not NOT_BLANK.search(value):
        raise ValueError("must not be empty or only whitespace")
    return value


# Text that must say something: a question, a corpus, a title. The JSON schema carries
# the same rule as a pattern, so clients and fuzzers know it too.
NonBlank = Annotated[str, AfterValidator(_not_blank), Field(json_schema_extra={"pattern": NOT_BLANK.pattern})]


class Document(Strict):
    id: str | None = Field(None, max_length=512)
    title: NonBlank = Field(max_length=1000)
    content: str


class QueryOptions(Strict):
    """Per-query overrides, bounded so one request cannot run away with the service."""

    max_iterations: RequestIterations | None = None
    max_depth: RequestDepth | None = None
    sub_max_iterations: RequestSubIterations | None = None
    truncate_chars: RequestTruncateChars | None = None
    root_model: ModelName | None = None
    sub_model: ModelName | None = None
    # Budgets for the whole recursion tree; at the end of one the query answers with what it has.
    max_tokens: TokenBudget | None = None
    max_cost: CostBudget | None = None
    deadline_seconds: DeadlineSeconds | None = None


def exactly_one_of(*names: str) -> dict[str, Any]:
    """The JSON schema of "exactly one of these fields is given and not null"."""
    return {"oneOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names]}


class CorpusSource(Strict):
    """Exactly one way of naming a corpus: inline text, documents, or a stored corpus id."""

    model_config = ConfigDict(json_schema_extra=exactly_one_of("corpus", "documents", "corpus_id"))

    corpus: NonBlank | None = None
    documents: list[Document] | None = Field(None, min_length=1)
    corpus_id: str | None = Field(None, pattern=SHA256_HEX)

    @model_validator(mode="after")
    def _exactly_one_source(self) -> CorpusSource:
        given = [n for n in ("corpus", "documents", "corpus_id") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'corpus' (text), 'documents' (list of {title, content}) "
                f"or 'corpus_id' (a stored corpus); got {given or 'none'}"
            )
        return self


class QueryRequest(CorpusSource):
    """What a user sends to start a query: a question and exactly one corpus source."""

    question: NonBlank = Field(max_length=20_000)
    options: QueryOptions = Field(default_factory=QueryOptions)


RequestKind = Literal["rlm", "llm"]


class PendingRequest(Strict):
    """A model call that code in the sandbox is blocked on."""

    id: str
    kind: RequestKind
    question: str
    sub_context_file: str | None = None
    sub_context_chars: int = 0
    model: str | None = None  # as the code named it (`model=`); None for the default


CellStatus = Literal["done", "suspended", "error", "timeout"]


class BlockEnd(Strict):
    """Where one fenced block's output ends in its cell's streams, and the error it raised."""

    stdout_end: int = Field(ge=0)
    stderr_end: int = Field(ge=0)
    error: str | None = None


class CellResult(Strict):
    """What one `execute`/`resume` of a cell returns (DESIGN section 4)."""

    cell_id: str
    status: CellStatus
    stdout: str = ""
    stderr: str = ""
    pending: list[PendingRequest] = Field(default_factory=list)
    final: str | None = None
    used_sections: list[str] = Field(default_factory=list)
    error: str | None = None
    blocks: list[BlockEnd] = Field(default_factory=list)  # one per block that ran, in order

    def block_outputs(self) -> list[tuple[str, str, str | None]]:
        """(stdout, stderr, error) of each block; what the streams hold past the last block
        (a truncation or restart note) goes with the last one. A cell without block ends is one block."""
        if not self.blocks:
            return [(self.stdout, self.stderr, self.error)]
        outputs, out_at, err_at = [], 0, 0
        for number, end in enumerate(self.blocks, start=1):
            last = number == len(self.blocks)
            out_to = len(self.stdout) if last else end.stdout_end
            err_to = len(self.stderr) if last else end.stderr_end
            outputs.append((self.stdout[out_at:out_to], self.stderr[err_at:err_to], end.error))
            out_at, err_at = out_to, err_to
        return outputs


class TokenUsage(Strict):
    """Model calls and what they used. Cached tokens are part of the prompt tokens, reasoning
    tokens part of the completion tokens (as providers count them); `cost` is in the price
    table's currency, None when no call was priced."""

    model_calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def priced(self, price: ModelPrice | None) -> TokenUsage:
        """This usage with its cost, when there is a price for its model."""
        if price is None:
            return self
        cost = price.cost(
            prompt_tokens=self.prompt_tokens, cached_tokens=self.cached_tokens, completion_tokens=self.completion_tokens
        )
        return self.model_copy(update={"cost": cost})

    def __add__(self, other: TokenUsage) -> TokenUsage:
        costs = [c for c in (self.cost, other.cost) if c is not None]
        return TokenUsage(
            model_calls=self.model_calls + other.model_calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost=sum(costs) if costs else None,
        )


# Why a query stopped exploring and answered with what it had.
ForcedReason = Literal["iterations", "tokens", "cost", "deadline"]


class Source(Strict):
    title: str
    document_id: str | None = None


class QueryResult(Strict):
    answer: str
    answer_key: str | None = None
    forced: bool = False
    forced_reason: ForcedReason | None = None
    failed: bool = False
    iterations: int
    sources: list[Source] = Field(default_factory=list)
    usage: dict[str, TokenUsage] = Field(default_factory=dict)  # per recursion depth
    cost: float | None = None  # of the whole tree, when a price table is set
    sub_queries: int = 0
    duration_seconds: float = 0.0
    instance_id: str
    trace: str
    trace_id: str | None = None  # the OpenTelemetry trace of the query tree (Application Insights: its operation id)
    error: str | None = None

    @property
    def answer_ref(self) -> TextRef:
        """The whole answer: inline, or the blob `answer_key` names when it was too long."""
        return TextRef(text=self.answer, key=self.answer_key)
