"""The spans and metrics of a query tree, emitted by the steps (activities), never by the
orchestrator, which is replayed:

    invoke_workflow compare     a comparison, emitted once when its result is written (SERVER)
      rlm.index                 the corpus's indexes built before the strategies run
        embeddings {model}      one embeddings request (CLIENT)
      rlm.judge                 the judge's pairwise preferences
      invoke_agent rlm          a (sub-)query, emitted once by its finish step (SERVER: a request)
        rlm.{step}              open, generate, execute, resume, leaf, finish, judge (INTERNAL)
          chat {model}          one model call, GenAI semantic conventions (CLIENT)
          execute_tool repl     one cell run in the sandbox (INTERNAL)
        invoke_agent rlm        each sub-query, a child of its parent query
      invoke_agent {baseline}   a retrieval baseline (keyword, vector, hybrid, agentic)
        rlm.{step}              index, retrieve, rewrite, answer, finish, judge
          chat / embeddings     its model calls

A query started on its own (not by a comparison) is the root of its trace.

Usage is read field by field from TokenUsage (whatever it holds: tokens, cached and reasoning
tokens, cost), so the spans and metrics carry each new field without a change here.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, get_current_span
from pydantic import BaseModel

from shared.telemetry.context import TraceParent, query_span_id, remote_parent
from shared.telemetry.setup import SCOPE, chosen_ids, tracer

if TYPE_CHECKING:
    from shared.models import CellResult, QueryResult, TokenUsage
    from shared.retrieval.models import StrategyFinishInput
    from shared.step_models import FinishInput, RlmTask

AGENT_NAME = "rlm"
QUERY_SPAN = f"invoke_agent {AGENT_NAME}"
CELL_SPAN = "execute_tool repl"
# GenAI provider names for MODEL_PROVIDER values.
PROVIDERS = {"openai": "openai", "azure": "azure.ai.openai"}
# TokenUsage fields and the attributes they become; fields it does not have are skipped.
USAGE_ATTRIBUTES = {
    "model_calls": "rlm.model_calls",
    "prompt_tokens": gen_ai.GEN_AI_USAGE_INPUT_TOKENS,
    "completion_tokens": gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS,
    "cached_tokens": gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "reasoning_tokens": gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    "cost": "rlm.cost",
}
# TokenUsage fields counted in `rlm.model.tokens`, by token type.
TOKEN_TYPES = {
    "prompt_tokens": "input",
    "completion_tokens": "output",
    "cached_tokens": "cached",
    "reasoning_tokens": "reasoning",
}

_meter = metrics.get_meter(SCOPE)
# Bucket boundaries the GenAI conventions recommend (seconds, tokens), and a doubling scale for counts.
_SECONDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84, 327.68, 655.36]
_TOKENS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
_COUNTS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

queries_started = _meter.create_counter("rlm.queries.started", "{query}", "(Sub-)queries that opened a sandbox session")
queries_finished = _meter.create_counter("rlm.queries.finished", "{query}", "(Sub-)queries that ended, by outcome")
query_duration = _meter.create_histogram(
    "rlm.query.duration", "s", "Wall time of a (sub-)query", explicit_bucket_boundaries_advisory=_SECONDS
)
query_iterations = _meter.create_histogram(
    "rlm.query.iterations", "{iteration}", "Iterations a (sub-)query took", explicit_bucket_boundaries_advisory=_COUNTS
)
query_sub_queries = _meter.create_histogram(
    "rlm.query.sub_queries", "{query}", "Sub-queries below a query", explicit_bucket_boundaries_advisory=_COUNTS
)
fan_out_width = _meter.create_histogram(
    "rlm.fan_out.width", "{query}", "Sub-queries one cell asked for at once", explicit_bucket_boundaries_advisory=_COUNTS
)
cell_duration = _meter.create_histogram(
    "rlm.cell.duration", "s", "Wall time of one execute or resume of a cell", explicit_bucket_boundaries_advisory=_SECONDS
)
model_duration = _meter.create_histogram(
    "gen_ai.client.operation.duration", "s", "GenAI operation duration", explicit_bucket_boundaries_advisory=_SECONDS
)
model_token_usage = _meter.create_histogram(
    "gen_ai.client.token.usage", "{token}", "Tokens used per model call", explicit_bucket_boundaries_advisory=_TOKENS
)
model_tokens = _meter.create_counter("rlm.model.tokens", "{token}", "Tokens by model and type (input, output, cached, reasoning)")
model_cost = _meter.create_counter("rlm.model.cost", "{currency}", "Cost by model, in the price table's currency")

Step = TypeVar("Step", bound=Callable[..., Any])


class _TaskPlace(BaseModel):
    """What every task (an RLM query's, a baseline's) says about its place in a trace."""

    root_id: str
    parent_id: str | None = None
    depth: int = 0
    strategy: str | None = None
    trace: TraceParent | None = None

    @property
    def trace_parent(self) -> TraceParent:
        return self.trace or TraceParent.of_root(self.root_id)


class _StepPlace(BaseModel):
    """Where a step's payload puts it in the tree (every step payload has these)."""

    task: _TaskPlace
    instance_id: str
    step: int | None = None
    iteration: int | None = None
    round: int | None = None


def _query_attributes(task: RlmTask | _TaskPlace, instance_id: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {"rlm.root_id": task.root_id, "rlm.instance_id": instance_id, "rlm.depth": task.depth}
    if task.parent_id:
        attributes["rlm.parent_id"] = task.parent_id
    if strategy := getattr(task, "strategy", None):
        attributes["rlm.strategy"] = strategy
    return attributes


def step_span(
    kind: str, trace_parent: TraceParent | None, parent_span_id: int | None, attributes: dict[str, Any]
) -> contextlib.AbstractContextManager[Span]:
    """An `rlm.{kind}` span under a span emitted (or still to be emitted) by another step; with
    no parent, the root of a trace of its own."""
    if trace_parent is None or parent_span_id is None:
        return tracer().start_as_current_span(f"rlm.{kind}", context=Context(), attributes=attributes)
    parent = remote_parent(trace_parent, parent_span_id)
    # The span this runs in (the Functions host's invocation, in Azure) belongs to another trace: link it.
    invocation = get_current_span().get_span_context()
    links = [Link(invocation)] if invocation.is_valid else []
    return tracer().start_as_current_span(f"rlm.{kind}", context=parent, attributes=attributes, links=links)


def traced(kind: str) -> Callable[[Step], Step]:
    """Run a step (sync or async) inside its `rlm.{kind}` span, a child of its query's span."""

    def wrap(step: Step) -> Step:
        def start(payload: dict[str, Any]) -> contextlib.AbstractContextManager[Span]:
            place = _StepPlace.model_validate(payload)
            attributes = _query_attributes(place.task, place.instance_id)
            numbers = (("step", place.step), ("iteration", place.iteration), ("round", place.round))
            attributes |= {f"rlm.{k}": v for k, v in numbers if v is not None}
            trace_parent = place.task.trace_parent
            return step_span(kind, trace_parent, query_span_id(trace_parent.trace_id, place.instance_id), attributes)

        if inspect.iscoroutinefunction(step):

            @functools.wraps(step)
            async def run_async(payload: dict[str, Any], *args: Any) -> Any:
                with start(payload):
                    return await step(payload, *args)

            return run_async  # type: ignore[return-value]

        @functools.wraps(step)
        def run(payload: dict[str, Any], *args: Any) -> Any:
            with start(payload):
                return step(payload, *args)

        return run  # type: ignore[return-value]

    return wrap


def usage_attributes(usage: TokenUsage) -> dict[str, Any]:
    return {USAGE_ATTRIBUTES[k]: v for k, v in usage.model_dump().items() if k in USAGE_ATTRIBUTES and v is not None}


class ModelCall:
    """What a model call span learns once the reply is in."""

    def __init__(self, span: Span, attributes: dict[str, Any]) -> None:
        self.span = span
        self.attributes = attributes

    def record(self, response_model: str, usage: TokenUsage) -> None:
        self.attributes[gen_ai.GEN_AI_RESPONSE_MODEL] = response_model
        self.span.set_attributes({gen_ai.GEN_AI_RESPONSE_MODEL: response_model, **usage_attributes(usage)})
        fields = usage.model_dump()
        common = {k: self.attributes[k] for k in _METRIC_KEYS if k in self.attributes}
        for field, token_type in (("prompt_tokens", "input"), ("completion_tokens", "output")):
            model_token_usage.record(fields.get(field) or 0, common | {gen_ai.GEN_AI_TOKEN_TYPE: token_type})
        for field, token_type in TOKEN_TYPES.items():
            if fields.get(field):
                model_tokens.add(fields[field], common | {gen_ai.GEN_AI_TOKEN_TYPE: token_type})
        if fields.get("cost"):
            model_cost.add(fields["cost"], common)


_METRIC_KEYS = (
    gen_ai.GEN_AI_OPERATION_NAME,
    gen_ai.GEN_AI_PROVIDER_NAME,
    gen_ai.GEN_AI_REQUEST_MODEL,
    gen_ai.GEN_AI_RESPONSE_MODEL,
    server_attributes.SERVER_ADDRESS,
)


@contextlib.contextmanager
def model_call(
    provider: str | None, model: str, base_url: str | None, operation: Literal["chat", "embeddings"] = "chat"
) -> Iterator[ModelCall]:
    """A `{operation} {model}` span around one model call, and its duration and token metrics."""
    name = PROVIDERS.get(provider or "", provider or "unknown")
    attributes: dict[str, Any] = {
        gen_ai.GEN_AI_OPERATION_NAME: operation,
        gen_ai.GEN_AI_PROVIDER_NAME: name,
        gen_ai.GEN_AI_SYSTEM: name,  # the older name, still what Application Insights types dependencies by
        gen_ai.GEN_AI_REQUEST_MODEL: model,
    }
    address = urlsplit(base_url or "")
    if address.hostname:
        attributes[server_attributes.SERVER_ADDRESS] = address.hostname
        if address.port:
            attributes[server_attributes.SERVER_PORT] = address.port
    began = time.perf_counter()
    with tracer().start_as_current_span(f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attributes) as span:
        call = ModelCall(span, attributes)
        try:
            yield call
        except Exception as exc:
            call.attributes[error_attributes.ERROR_TYPE] = getattr(exc, "status", None) or type(exc).__qualname__
            span.set_attribute(error_attributes.ERROR_TYPE, str(call.attributes[error_attributes.ERROR_TYPE]))
            raise
        finally:
            keys = (*_METRIC_KEYS, error_attributes.ERROR_TYPE)
            model_duration.record(time.perf_counter() - began, {k: str(call.attributes[k]) for k in keys if k in call.attributes})


class CellRun:
    def __init__(self, span: Span) -> None:
        self.span = span
        self.status = "unknown"

    def record(self, cell: CellResult) -> None:
        self.status = cell.status
        self.span.set_attributes(
            {
                "rlm.cell.status": cell.status,
                "rlm.cell.output_chars": len(cell.stdout) + len(cell.stderr),
                "rlm.cell.pending": len(cell.pending),
                "rlm.cell.blocks": len(cell.model_dump().get("blocks") or []) or 1,
            }
        )
        if cell.pending:
            fan_out_width.record(len(cell.pending))
        if cell.status in ("error", "timeout"):
            self.span.set_status(Status(StatusCode.ERROR, (cell.error or cell.status)[:200]))


@contextlib.contextmanager
def cell_run(cell_id: str, kind: str) -> Iterator[CellRun]:
    """An `execute_tool repl` span around one execute or resume of a cell in the sandbox."""
    attributes = {
        gen_ai.GEN_AI_OPERATION_NAME: "execute_tool",
        gen_ai.GEN_AI_TOOL_NAME: "repl",
        gen_ai.GEN_AI_TOOL_TYPE: "function",
        "rlm.cell.id": cell_id,
        "rlm.cell.run": kind,
    }
    began = time.perf_counter()
    with tracer().start_as_current_span(CELL_SPAN, attributes=attributes) as span:
        run = CellRun(span)
        try:
            yield run
        finally:
            cell_duration.record(time.perf_counter() - began, {"rlm.cell.status": run.status, "rlm.cell.run": kind})


def query_started(task: RlmTask) -> None:
    queries_started.add(1, {"rlm.depth": task.depth})


def query_finished(finish: FinishInput, result: QueryResult) -> None:
    """Emit the (sub-)query's span, from its start in the orchestration to now, under the id
    its steps named as their parent; and the query metrics."""
    task = finish.task
    attributes = {
        gen_ai.GEN_AI_AGENT_NAME: AGENT_NAME,
        gen_ai.GEN_AI_REQUEST_MODEL: task.model,
        "rlm.outcome": finish.outcome,
        "rlm.iterations": finish.iterations,
        "rlm.sub_queries": finish.sub_queries,
    }
    if finish.forced_reason is not None:
        attributes["rlm.forced_reason"] = finish.forced_reason
    _agent_span(QUERY_SPAN, task, finish.instance_id, attributes, finish.usage, finish.started_at, result)
    outcome = {"rlm.depth": task.depth, "rlm.outcome": finish.outcome}
    queries_finished.add(1, outcome)
    query_duration.record(result.duration_seconds, outcome)
    query_iterations.record(finish.iterations, {"rlm.depth": task.depth})
    query_sub_queries.record(finish.sub_queries, {"rlm.depth": task.depth})


def strategy_finished(finish: StrategyFinishInput, result: QueryResult) -> None:
    """Emit a retrieval baseline's span, as `query_finished` does for an RLM query."""
    task = finish.task
    attributes = {
        gen_ai.GEN_AI_AGENT_NAME: task.strategy,
        gen_ai.GEN_AI_REQUEST_MODEL: task.model,
        "rlm.outcome": finish.outcome,
        "rlm.rounds": finish.rounds,
        "rlm.sources": len(finish.sources),
    }
    place = _TaskPlace.model_validate(task.model_dump())
    _agent_span(f"invoke_agent {task.strategy}", place, finish.instance_id, attributes, finish.usage, finish.started_at, result)


def _agent_span(
    name: str,
    task: RlmTask | _TaskPlace,
    instance_id: str,
    attributes: dict[str, Any],
    usage: dict[str, TokenUsage],
    started_at: str,
    result: QueryResult,
) -> None:
    """An agent's span under the id its steps named as their parent: a child of its parent
    query, else of the span its trace started in (a comparison, a request), else a root."""
    trace_parent = task.trace_parent
    parent_span = query_span_id(trace_parent.trace_id, task.parent_id) if task.parent_id else None
    if parent_span is None and trace_parent.parent_span_id is not None:
        parent_span = int(trace_parent.parent_span_id, 16)
    total = _total_usage(usage)
    attributes = _query_attributes(task, instance_id) | {
        gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent",
        gen_ai.GEN_AI_AGENT_ID: instance_id,
        gen_ai.GEN_AI_CONVERSATION_ID: task.root_id,
        **attributes,
        **(usage_attributes(total) if total is not None else {}),
    }
    failure = (result.error or "the query failed") if result.failed else None
    _finished_span(name, trace_parent, parent_span, instance_id, attributes, started_at, failure)


def workflow_finished(
    workflow: str, trace_parent: TraceParent, workflow_id: str, attributes: dict[str, Any], started_at: str, usage: TokenUsage
) -> None:
    """Emit a workflow's span (a comparison): the parent its strategies' spans named."""
    parent_span = int(trace_parent.parent_span_id, 16) if trace_parent.parent_span_id else None
    attributes = {
        gen_ai.GEN_AI_OPERATION_NAME: "invoke_workflow",
        gen_ai.GEN_AI_WORKFLOW_NAME: workflow,
        f"rlm.{workflow}_id": workflow_id,
        **attributes,
        **usage_attributes(usage),
    }
    _finished_span(f"invoke_workflow {workflow}", trace_parent, parent_span, workflow_id, attributes, started_at, None)


def _finished_span(
    name: str,
    trace_parent: TraceParent,
    parent_span: int | None,
    owner_id: str,
    attributes: dict[str, Any],
    started_at: str,
    failure: str | None,
) -> None:
    """A span from `started_at` to now, under the id `query_span_id` gives its owner."""
    # Given no parent, a span would take the current one (the finish step's): an empty context makes it a root.
    parent = remote_parent(trace_parent, parent_span) if parent_span is not None else Context()
    started = datetime.fromisoformat(started_at)
    with chosen_ids(int(trace_parent.trace_id, 16), query_span_id(trace_parent.trace_id, owner_id)):
        span = tracer().start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes, start_time=_nanos(started))
    if failure is not None:
        span.set_status(Status(StatusCode.ERROR, failure[:200]))
    span.end()


def _total_usage(usage: dict[str, TokenUsage]) -> TokenUsage | None:
    values = list(usage.values())
    return sum(values[1:], values[0]) if values else None


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
