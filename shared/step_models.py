"""Inputs and outputs of the RLM loop's steps. They carry ids, keys and small summaries
only: Durable history keeps every one of them, so corpora, code, cell output and long
texts stay in blob storage (DESIGN section 5)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from shared.bounds import Depth, Iterations, ModelName, Parallel, TruncateChars
from shared.budget import Budget
from shared.corpus import CorpusIndex
from shared.models import CellStatus, ForcedReason, RequestKind, TokenUsage
from shared.payloads import TextRef
from shared.telemetry.context import TraceParent

# Root ids become sandbox session identifiers and blob key parts; children append
# "-{iteration}-{k}" per level, so roots stay well under the 128 characters ACA allows.
ROOT_INSTANCE_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{3,63}$"
# Any instance of a tree, a root or a sub-query: the same alphabet, within ACA's 128.
INSTANCE_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{3,127}$"
# The task rides in every step's input (and so twice in history per step): longer
# questions travel by reference.
QUESTION_INLINE = 500


class RlmTask(BaseModel):
    """One (sub-)query: the input of one run of the loop."""

    question: TextRef
    corpus_id: str
    root_id: str = Field(pattern=ROOT_INSTANCE_ID)
    parent_id: str | None = Field(None, pattern=INSTANCE_ID)
    # The comparison or batch the tree runs for, if any: when that ends, so does the tree.
    owner_id: str | None = Field(None, pattern=INSTANCE_ID)
    depth: Depth = 0
    max_depth: Depth
    max_iterations: Iterations
    sub_max_iterations: Iterations
    truncate_chars: TruncateChars
    max_parallel: Parallel = 16
    root_model: ModelName
    sub_model: ModelName
    requested_model: ModelName | None = None  # what the parent's code named with `model=`, if anything
    budget: Budget = Field(default_factory=Budget)
    trace: TraceParent | None = None  # the root query's trace, shared by the whole tree

    @model_validator(mode="after")
    def _within_its_tree(self) -> RlmTask:
        if self.depth > self.max_depth:
            raise ValueError(f"depth {self.depth} is beyond max_depth {self.max_depth}")
        return self

    @property
    def model(self) -> str:
        return self.root_model if self.depth == 0 else self.sub_model

    @property
    def height(self) -> int:
        """Levels of sub-queries that may still open below this one (each holds a sandbox)."""
        return self.max_depth - self.depth

    @property
    def trace_parent(self) -> TraceParent:
        return self.trace or TraceParent.of_root(self.root_id)

    def allowed_model(self, requested: str | None, allowed: Collection[str]) -> str | None:
        """The model a request from this task's code may use: the one it named when that is this
        task's root or sub model or in `allowed`; None (the sub-model) otherwise."""
        return requested if requested in {self.root_model, self.sub_model, *allowed} else None

    def child(self, request: PendingRef, parent_id: str, budget: Budget) -> RlmTask:
        """A sub-query's task (over the parent's corpus unless the request gave a sub-context) with
        its share of the budget; a model the request may use becomes its model and its
        descendants' default."""
        return self.model_copy(
            update={
                "question": request.question,
                "corpus_id": request.corpus_id or self.corpus_id,
                "parent_id": parent_id,
                "depth": self.depth + 1,
                "max_iterations": self.sub_max_iterations,
                "sub_model": request.model or self.sub_model,
                "requested_model": request.requested_model,
                "budget": budget,
            }
        )


class StepInput(BaseModel):
    """What every step activity needs to find its place in the trace."""

    task: RlmTask
    instance_id: str
    step: int
    iteration: int


class OpenOutput(BaseModel):
    """The corpus's size, as the model is told it."""

    context_chars: int
    section_count: int

    @classmethod
    def of(cls, index: CorpusIndex) -> OpenOutput:
        return cls(context_chars=index.chars, section_count=len(index.sections))


class GenerateInput(StepInput):
    opened: OpenOutput | None = None  # None for the first call, made while the session opens
    forced: ForcedReason | None = None  # why this call must answer without code


class GenerateOutput(BaseModel):
    has_code: bool
    final: TextRef | None = None
    usage: TokenUsage
    code_preview: str | None = None  # the first line of the code, for live progress


class ExecuteInput(StepInput):
    cell_id: str
    code_step: int


class ResumeInput(StepInput):
    cell_id: str
    answers: dict[str, TextRef]


class PendingRef(BaseModel):
    id: str
    kind: RequestKind
    question: TextRef
    corpus_id: str | None = None
    requested_model: str | None = None  # as the code named it
    model: str | None = None  # the model to use; None: the task's sub-model (nothing named, or a name not allowed)


class CellSummary(BaseModel):
    status: CellStatus
    pending: list[PendingRef] = Field(default_factory=list)
    final: TextRef | None = None
    used_sections: list[str] = Field(default_factory=list)


class LeafInput(StepInput):
    request_id: str
    kind: RequestKind
    question: TextRef
    corpus_id: str | None = None
    requested_model: str | None = None
    model: str | None = None


class LoopState(BaseModel):
    """Where a loop stopped when its orchestration continued as new: counters and references
    only. The next generation starts with an empty history but goes on with the same step
    numbers, cell and sub-query ids, usage, budget and sandbox session."""

    iteration: int  # iterations done
    step: int  # the trace number of the last step
    opened: OpenOutput
    started_at: str  # when the first generation started
    usage: dict[str, TokenUsage]
    last_call: TokenUsage
    sub_queries: int
    sub_queries_done: int
    used_sections: list[str]


class LoopInput(BaseModel):
    """A loop orchestration's input: the task, and after the first generation the state the
    previous one carried (the task's budget then has its deadline fixed)."""

    task: RlmTask
    state: LoopState | None = None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> LoopInput:
        """Starts and parents send a bare task; a generation continuing as new sends both."""
        return cls.model_validate(raw) if "task" in raw else cls(task=RlmTask.model_validate(raw))


class SubAnswer(BaseModel):
    """What a fanned-out request gives back: an answer, never an exception."""

    answer: TextRef
    failed: bool = False
    usage: dict[str, TokenUsage] = Field(default_factory=dict)
    sub_queries: int = 0


class FinishInput(BaseModel):
    task: RlmTask
    instance_id: str
    answer: TextRef
    outcome: Literal["final", "forced", "failed"]
    forced_reason: ForcedReason | None = None
    iterations: int
    used_sections: list[str]
    usage: dict[str, TokenUsage]
    sub_queries: int
    started_at: str
    ended_at: str
    error: str | None = None


class Progress(BaseModel):
    """Custom status: small (Durable caps it at 16 KB), updated after every step."""

    phase: str
    depth: int
    max_depth: int
    iteration: int
    max_iterations: int
    sub_queries_running: int = 0
    sub_queries_done: int = 0
    tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None  # so far, when the model calls are priced
    max_tokens: int | None = None
    max_cost: float | None = None
    deadline: str | None = None
    forced_reason: ForcedReason | None = None  # set once a budget (or the iteration limit) ran out
    started_at: str | None = None
    elapsed_seconds: float = 0.0  # at this report, by the orchestration's clock
    step: int = 0  # the trace number of the step running now
    code: str | None = None  # the first line of the code running now
    trace_id: str | None = None  # the query's OpenTelemetry trace (Application Insights: its operation id)
