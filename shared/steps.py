"""The steps of the RLM loop: the only code that touches the model, the sandbox and
storage. Each takes and returns a small JSON-able dict (see step_models).

Each is safe to run twice (Durable activities are at-least-once): trace keys are
deterministic, cells are idempotent by id, and corpora are content-addressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.config import Settings
from shared.corpus import load_index, save_corpus
from shared.llm import ModelError, ModelReply, get_model
from shared.models import CellResult, QueryResult, Source, TokenUsage
from shared.payloads import TextRef
from shared.prompts import LEAF_SYSTEM_PROMPT, render_leaf_message, render_root_request
from shared.protocol import ParsedReply, parse_reply
from shared.sandbox import SandboxExecutor, make_executor
from shared.step_models import (
    QUESTION_INLINE,
    CellSummary,
    ExecuteInput,
    FinishInput,
    GenerateInput,
    GenerateOutput,
    LeafInput,
    OpenOutput,
    PendingRef,
    ResumeInput,
    StepInput,
    SubAnswer,
)
from shared.storage import BlobStore, make_store
from shared.telemetry import spans
from shared.telemetry.spans import traced
from shared.trace import InstanceMeta, StepKind, StepRecord, TraceStore, turns_from_steps, utcnow

LEAF_CONTEXT_CHARS = 200_000
RESULT_ANSWER_INLINE = 16_000
CODE_PREVIEW_CHARS = 120

# One line per step, keyed by instance id: what operators search in Application Insights.
log = logging.getLogger("rlm.steps")


@dataclass(frozen=True)
class Parts:
    """The long-lived things steps use; one set per worker process."""

    settings: Settings
    store: BlobStore
    traces: TraceStore
    executor: SandboxExecutor

    @classmethod
    def from_settings(cls, settings: Settings) -> Parts:
        store = make_store(settings)
        return cls(settings=settings, store=store, traces=TraceStore(store), executor=make_executor(settings, store))

    def usage_of(self, reply: ModelReply, model: str) -> TokenUsage:
        """One call's usage, priced from the table for the model asked for (else the one that answered)."""
        usage = TokenUsage(
            model_calls=1,
            prompt_tokens=reply.prompt_tokens,
            cached_tokens=reply.cached_tokens,
            completion_tokens=reply.completion_tokens,
            reasoning_tokens=reply.reasoning_tokens,
        )
        prices = self.settings.prices
        return usage.priced(prices.get(model) or prices.get(reply.model))

    def model_call(self, model: str) -> contextlib.AbstractContextManager[spans.ModelCall]:
        """The span and metrics of one call to `model` at the configured provider."""
        return spans.model_call(self.settings.model_provider, model, self.settings.model_base_url)

    async def chat(self, model: str, system: str, prompt: str) -> tuple[ModelReply, TokenUsage]:
        """One chat call, the way every part of the app makes one: inside its span, within the
        configured timeout, its usage priced."""
        client = await get_model(self.settings)
        with self.model_call(model) as call:
            reply = await client.complete(model=model, system=system, prompt=prompt, timeout=self.settings.model_timeout_seconds)
            usage = self.usage_of(reply, model)
            call.record(reply.model, usage)
        return reply, usage


async def reserve_sandbox(p: StepInput, parts: Parts) -> None:
    """Wait (holding no thread) for the instance's sandbox slot, before any step that may start its sandbox."""
    await parts.executor.reserve(p.instance_id, p.task.root_id, p.task.height)


@traced("open")
async def open_session(payload: dict[str, Any], parts: Parts) -> dict[str, Any]:
    """Start (or find) the sandbox session of an instance with its corpus loaded. The loop
    runs it beside the first model call, which needs only the corpus's size."""
    p = StepInput.model_validate(payload)
    question = await asyncio.to_thread(p.task.question.resolve, parts.store)
    opened = await asyncio.to_thread(_record_start, p, parts, question)
    await reserve_sandbox(p, parts)
    await parts.executor.in_thread(parts.executor.open, p.instance_id, p.task.corpus_id, p.task.root_id, p.task.height)
    return opened.model_dump()


def _record_start(p: StepInput, parts: Parts, question: str) -> OpenOutput:
    """The instance's trace record, written by whichever of its first two steps (the opening
    and the first call, which run at once) gets there first: a cancel finds the instance by it,
    so it must exist before the model is called; a retried step finds it and counts no second
    start. Returns the corpus's size; refuses a tree the host could never run, before any call."""
    parts.executor.slots.check(p.task.height)
    index = load_index(parts.store, p.task.corpus_id)
    meta = InstanceMeta(
        instance_id=p.instance_id,
        root_id=p.task.root_id,
        parent_id=p.task.parent_id,
        depth=p.task.depth,
        question=question,
        corpus_id=p.task.corpus_id,
        context_chars=index.chars,
        started_at=utcnow(),
        model=p.task.model,
        requested_model=p.task.requested_model,
    )
    if parts.traces.start_meta(p.task.root_id, meta):
        spans.query_started(p.task)
    return OpenOutput.of(index)


@traced("generate")
async def generate_step(payload: dict[str, Any], parts: Parts) -> dict[str, Any]:
    """One model call: the transcript so far in, the next reply (code or an answer) out."""
    p = GenerateInput.model_validate(payload)
    started = utcnow()
    question = await asyncio.to_thread(p.task.question.resolve, parts.store)
    earlier = await asyncio.to_thread(parts.traces.steps, p.task.root_id, p.instance_id)
    opened = p.opened or await asyncio.to_thread(_record_start, p, parts, question)
    request = render_root_request(
        question=question,
        context_chars=opened.context_chars,
        section_count=opened.section_count,
        iteration=p.iteration,
        max_iterations=p.task.max_iterations,
        turns=turns_from_steps([s for s in earlier if s.step < p.step], p.task.truncate_chars, p.forced),
        forced=p.forced,
    )
    reply, usage = await parts.chat(p.task.model, request.system, request.prompt)
    parsed = ParsedReply(final_text=reply.text) if p.forced else parse_reply(reply.text)
    record = StepRecord(
        instance_id=p.instance_id,
        step=p.step,
        iteration=p.iteration,
        kind="forced" if p.forced else "generate",
        forced_reason=p.forced,
        started_at=started,
        model=p.task.model,
        prompt=request.transcript,
        reply=reply.text,
        blocks=parsed.blocks,
        notes=parsed.notes,
        usage=usage,
    )
    await asyncio.to_thread(parts.traces.write_step, p.task.root_id, record)
    log.info(
        "generate instance=%s depth=%d iteration=%d model=%s tokens=%d+%d cached=%d blocks=%d final=%s",
        p.instance_id, p.task.depth, p.iteration, p.task.model, usage.prompt_tokens, usage.completion_tokens,
        usage.cached_tokens, len(parsed.blocks), parsed.final_text is not None,
    )  # fmt: skip
    final = parsed.final_text
    final_ref = await asyncio.to_thread(TextRef.of, final, parts.store) if final is not None else None
    preview = code_preview(record.code)
    return GenerateOutput(has_code=bool(parsed.blocks), final=final_ref, usage=usage, code_preview=preview).model_dump()


@traced("execute")
async def execute_cell(payload: dict[str, Any], parts: Parts) -> dict[str, Any]:
    """Run the blocks of a generate step, in order, as one cell; it may suspend on sub-queries."""
    p = ExecuteInput.model_validate(payload)
    await reserve_sandbox(p, parts)
    return await parts.executor.in_thread(_execute_cell, p, parts)


def _execute_cell(p: ExecuteInput, parts: Parts) -> dict[str, Any]:
    started = utcnow()
    blocks = parts.traces.read_step(p.task.root_id, p.instance_id, p.code_step).blocks
    if not blocks:
        raise ValueError(f"step {p.code_step} of {p.instance_id} has no code to execute")
    with spans.cell_run(p.cell_id, "execute") as run:
        cell = parts.executor.execute(p.instance_id, p.cell_id, blocks)
        run.record(cell)
    _record_cell(parts, p, "execute", started, cell, {})
    return _summarize(parts, p, cell).model_dump()


@traced("resume")
async def resume_cell(payload: dict[str, Any], parts: Parts) -> dict[str, Any]:
    """Hand a suspended cell the answers to its pending requests."""
    p = ResumeInput.model_validate(payload)
    await reserve_sandbox(p, parts)
    return await parts.executor.in_thread(_resume_cell, p, parts)


def _resume_cell(p: ResumeInput, parts: Parts) -> dict[str, Any]:
    started = utcnow()
    answers = {request_id: ref.resolve(parts.store) for request_id, ref in p.answers.items()}
    with spans.cell_run(p.cell_id, "resume") as run:
        cell = parts.executor.resume(p.instance_id, p.cell_id, answers)
        run.record(cell)
    _record_cell(parts, p, "resume", started, cell, answers)
    return _summarize(parts, p, cell).model_dump()


@traced("leaf")
async def leaf_query(payload: dict[str, Any], parts: Parts) -> dict[str, Any]:
    """A single model call (llm_query, or rlm_query at max depth). Model failures become an
    answer saying so, so one bad branch does not sink its siblings."""
    p = LeafInput.model_validate(payload)
    started = utcnow()
    question = await asyncio.to_thread(p.question.resolve, parts.store)
    sub_context = None
    if p.kind == "rlm":
        sub_context = await asyncio.to_thread(_corpus_head, parts, p.corpus_id or p.task.corpus_id, LEAF_CONTEXT_CHARS + 1)
    prompt = render_leaf_message(question, sub_context, LEAF_CONTEXT_CHARS)
    model_name = p.model or p.task.sub_model
    error = None
    try:
        reply, usage = await parts.chat(model_name, LEAF_SYSTEM_PROMPT, prompt)
        text = reply.text
    except ModelError as exc:
        log.warning("leaf instance=%s request=%s failed: %s", p.instance_id, p.request_id, exc)
        error = str(exc)
        text, usage = f"[{p.kind}_query failed: {error}]", TokenUsage(model_calls=1)
    record = StepRecord(
        instance_id=p.instance_id,
        step=p.step,
        iteration=p.iteration,
        kind="leaf",
        started_at=started,
        model=model_name,
        requested_model=p.requested_model,
        prompt=prompt,
        reply=text,
        usage=usage,
        request_id=p.request_id,
        error=error,
    )
    await asyncio.to_thread(parts.traces.write_step, p.task.root_id, record)
    answer = await asyncio.to_thread(TextRef.of, text, parts.store)
    return SubAnswer(answer=answer, failed=error is not None, usage={str(p.task.depth + 1): usage}).model_dump()


@traced("finish")
def finish_query(payload: dict[str, Any], parts: Parts) -> dict[str, Any]:
    """Write the result beside the trace and end the sandbox session; a root ends its whole
    tree (every sub-query has finished by then, so no late retry needs a journal)."""
    p = FinishInput.model_validate(payload)
    answer = p.answer.resolve(parts.store)
    index = load_index(parts.store, p.task.corpus_id).sections
    titles = list(dict.fromkeys(p.used_sections))
    sources = [Source(title=t, document_id=index.get(t)) for t in titles if t in index]
    sources += [Source(title=t) for t in titles if t not in index]
    inline = TextRef.of(answer, parts.store, limit=RESULT_ANSWER_INLINE)
    result = QueryResult(
        answer=inline.text,
        answer_key=inline.key,
        forced=p.outcome == "forced",
        forced_reason=p.forced_reason,
        failed=p.outcome == "failed",
        iterations=p.iterations,
        sources=sources,
        usage=p.usage,
        cost=sum(p.usage.values(), TokenUsage()).cost,
        sub_queries=p.sub_queries,
        duration_seconds=max((datetime.fromisoformat(p.ended_at) - datetime.fromisoformat(p.started_at)).total_seconds(), 0.0),
        instance_id=p.instance_id,
        trace=f"{parts.store.containers.traces}/{p.task.root_id}/",
        trace_id=p.task.trace_parent.trace_id,
        error=p.error,
    )
    parts.traces.write_result(p.task.root_id, result)
    if p.task.depth == 0:
        parts.executor.close_tree(p.instance_id)
    else:
        parts.executor.close(p.instance_id)
    spans.query_finished(p, result)
    log.info(
        "finish instance=%s outcome=%s iterations=%d sub_queries=%d seconds=%.1f forced_reason=%s cost=%s",
        p.instance_id, p.outcome, p.iterations, p.sub_queries, result.duration_seconds, p.forced_reason, result.cost,
    )  # fmt: skip
    return result.model_dump()


STEPS = {
    "open_session": open_session,
    "generate_step": generate_step,
    "execute_cell": execute_cell,
    "resume_cell": resume_cell,
    "leaf_query": leaf_query,
    "finish_query": finish_query,
}


def _record_cell(
    parts: Parts, p: StepInput, kind: StepKind, started: datetime, cell: CellResult, answers: dict[str, str]
) -> None:
    record = StepRecord(
        instance_id=p.instance_id, step=p.step, iteration=p.iteration, kind=kind, started_at=started, cell=cell, answers=answers
    )
    parts.traces.write_step(p.task.root_id, record)
    log.info(
        "%s instance=%s iteration=%d cell=%s status=%s pending=%d output_chars=%d",
        kind, p.instance_id, p.iteration, cell.cell_id, cell.status, len(cell.pending), len(cell.stdout) + len(cell.stderr),
    )  # fmt: skip


def _summarize(parts: Parts, p: StepInput, cell: CellResult) -> CellSummary:
    """Pending sub-contexts become stored corpora, so children get a corpus id, not text; a model
    the code named is kept if allowed, else the request falls back to the sub-model (and says so)."""
    settings = parts.settings
    allowed = {settings.root_model, settings.sub_model, *settings.allowed_models}
    pending = []
    for request in cell.pending:
        corpus_id = None
        if request.sub_context_file:
            corpus_id = save_corpus(parts.store, parts.executor.read_sub_context(p.instance_id, request.sub_context_file))
        question = TextRef.of(request.question, parts.store, limit=QUESTION_INLINE)
        model = p.task.allowed_model(request.model, allowed)
        if request.model is not None and model is None:
            log.warning(
                "model instance=%s request=%s asked for %r, which is not allowed: using %s",
                p.instance_id, request.id, request.model, p.task.sub_model,
            )  # fmt: skip
        pending.append(
            PendingRef(
                id=request.id, kind=request.kind, question=question, corpus_id=corpus_id,
                requested_model=request.model, model=model,
            )  # fmt: skip
        )
    final = TextRef.of(cell.final, parts.store) if cell.final is not None else None
    return CellSummary(status=cell.status, pending=pending, final=final, used_sections=cell.used_sections[:500])


def code_preview(code: str | None) -> str | None:
    """The first line of code that says something, short enough for a status line."""
    for line in (code or "").splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            return text if len(text) <= CODE_PREVIEW_CHARS else text[: CODE_PREVIEW_CHARS - 1] + "…"
    return None


def _corpus_head(parts: Parts, corpus_id: str, chars: int) -> str:
    path = parts.store.local_path(parts.store.containers.corpora, corpus_id)
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        return handle.read(chars)
