"""Activities: the only place the RLM touches the model, the sandbox and storage.

Each one is safe to run twice (Durable activities are at-least-once): trace keys are
deterministic, cells are idempotent by id, and corpora are content-addressed.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import azure.durable_functions as df

from rlm_activities import services
from rlm_activities.messages import (
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
from shared.corpus import load_index, save_corpus
from shared.llm import ModelError
from shared.models import CellResult, QueryResult, Source, TokenUsage
from shared.payloads import TextRef
from shared.prompts import LEAF_SYSTEM_PROMPT, ROOT_SYSTEM_PROMPT, render_leaf_message, render_turn_message
from shared.protocol import parse_reply
from shared.trace import InstanceMeta, StepKind, StepRecord, turns_from_steps, utcnow

bp = df.Blueprint()

LEAF_CONTEXT_CHARS = 200_000
RESULT_ANSWER_INLINE = 16_000


@bp.activity_trigger(input_name="payload")
def open_session(payload: dict) -> dict:
    """Start (or find) the sandbox session of an instance with its corpus loaded."""
    p = StepInput.model_validate(payload)
    store = services.store()
    index = load_index(store, p.task.corpus_id)
    services.executor().open(p.instance_id, p.task.corpus_id)
    services.traces().write_meta(
        p.task.root_id,
        InstanceMeta(
            instance_id=p.instance_id,
            root_id=p.task.root_id,
            parent_id=p.task.parent_id,
            depth=p.task.depth,
            question=p.task.question.resolve(store),
            corpus_id=p.task.corpus_id,
            context_chars=index.chars,
            started_at=utcnow(),
        ),
    )
    return OpenOutput(context_chars=index.chars, section_count=len(index.sections)).model_dump()


@bp.activity_trigger(input_name="payload")
async def generate_step(payload: dict) -> dict:
    """One model call: the transcript so far in, the next reply (code or an answer) out."""
    p = GenerateInput.model_validate(payload)
    started = utcnow()
    store, traces = services.store(), services.traces()
    question = await asyncio.to_thread(p.task.question.resolve, store)
    earlier = await asyncio.to_thread(traces.steps, p.task.root_id, p.instance_id)
    message = render_turn_message(
        question=question,
        context_chars=p.context_chars,
        section_count=p.section_count,
        iteration=p.iteration,
        max_iterations=p.task.max_iterations,
        turns=turns_from_steps([s for s in earlier if s.step < p.step], p.task.truncate_chars),
        forced=p.forced,
    )
    model = await services.model()
    reply = await model.complete(
        model=p.task.model, system=ROOT_SYSTEM_PROMPT, prompt=message, timeout=services.settings().model_timeout_seconds
    )
    usage = TokenUsage(model_calls=1, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
    if p.forced:
        code, final = None, reply.text
    else:
        parsed = parse_reply(reply.text)
        code, final = parsed.code, parsed.final_text
    record = StepRecord(
        instance_id=p.instance_id,
        step=p.step,
        iteration=p.iteration,
        kind="forced" if p.forced else "generate",
        started_at=started,
        model=p.task.model,
        prompt=message,
        reply=reply.text,
        code=code,
        usage=usage,
    )
    await asyncio.to_thread(traces.write_step, p.task.root_id, record)
    final_ref = await asyncio.to_thread(TextRef.of, final, store) if final is not None else None
    return GenerateOutput(has_code=code is not None, final=final_ref, usage=usage).model_dump()


@bp.activity_trigger(input_name="payload")
def execute_cell(payload: dict) -> dict:
    """Run the code of a generate step as one cell; it may suspend on sub-queries."""
    p = ExecuteInput.model_validate(payload)
    started = utcnow()
    code = services.traces().read_step(p.task.root_id, p.instance_id, p.code_step).code
    if code is None:
        raise ValueError(f"step {p.code_step} of {p.instance_id} has no code to execute")
    cell = services.executor().execute(p.instance_id, p.cell_id, code)
    _record_cell(p, "execute", started, cell, {})
    return _summarize(p.instance_id, cell).model_dump()


@bp.activity_trigger(input_name="payload")
def resume_cell(payload: dict) -> dict:
    """Hand a suspended cell the answers to its pending requests."""
    p = ResumeInput.model_validate(payload)
    started = utcnow()
    store = services.store()
    answers = {request_id: ref.resolve(store) for request_id, ref in p.answers.items()}
    cell = services.executor().resume(p.instance_id, p.cell_id, answers)
    _record_cell(p, "resume", started, cell, answers)
    return _summarize(p.instance_id, cell).model_dump()


@bp.activity_trigger(input_name="payload")
async def leaf_query(payload: dict) -> dict:
    """A single model call (llm_query, or rlm_query at max depth). Model failures become an
    answer saying so, so one bad branch does not sink its siblings."""
    p = LeafInput.model_validate(payload)
    started = utcnow()
    store = services.store()
    question = await asyncio.to_thread(p.question.resolve, store)
    sub_context = None
    if p.kind == "rlm":
        sub_context = await asyncio.to_thread(_corpus_head, p.corpus_id or p.task.corpus_id, LEAF_CONTEXT_CHARS + 1)
    prompt = render_leaf_message(question, sub_context, LEAF_CONTEXT_CHARS)
    model_name = p.task.sub_model
    error = None
    try:
        model = await services.model()
        reply = await model.complete(
            model=model_name, system=LEAF_SYSTEM_PROMPT, prompt=prompt, timeout=services.settings().model_timeout_seconds
        )
        text, usage = reply.text, TokenUsage(model_calls=1, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
    except ModelError as exc:
        error = str(exc)
        text, usage = f"[{p.kind}_query failed: {error}]", TokenUsage(model_calls=1)
    record = StepRecord(
        instance_id=p.instance_id,
        step=p.step,
        iteration=p.iteration,
        kind="leaf",
        started_at=started,
        model=model_name,
        prompt=prompt,
        reply=text,
        usage=usage,
        error=error,
    )
    await asyncio.to_thread(services.traces().write_step, p.task.root_id, record)
    answer = await asyncio.to_thread(TextRef.of, text, store)
    return SubAnswer(answer=answer, failed=error is not None, usage={str(p.task.depth + 1): usage}).model_dump()


@bp.activity_trigger(input_name="payload")
def finish_query(payload: dict) -> dict:
    """Write the result beside the trace and end the sandbox session."""
    p = FinishInput.model_validate(payload)
    store = services.store()
    answer = p.answer.resolve(store)
    index = load_index(store, p.task.corpus_id).sections
    sources = [Source(title=t, document_id=index.get(t)) for t in dict.fromkeys(p.used_sections) if t in index]
    unknown = [t for t in p.used_sections if t not in index]
    if unknown:
        sources += [Source(title=t) for t in dict.fromkeys(unknown)]
    inline = TextRef.of(answer, store, limit=RESULT_ANSWER_INLINE)
    result = QueryResult(
        answer=inline.text,
        answer_key=inline.key,
        forced=p.outcome == "forced",
        failed=p.outcome == "failed",
        iterations=p.iterations,
        sources=sources,
        usage=p.usage,
        sub_queries=p.sub_queries,
        duration_seconds=_seconds_between(p.started_at, p.ended_at),
        instance_id=p.instance_id,
        trace=f"{store.containers.traces}/{p.task.root_id}/",
        error=p.error,
    )
    services.traces().write_result(p.task.root_id, result)
    services.executor().close(p.instance_id)
    return result.model_dump()


def _record_cell(p: StepInput, kind: StepKind, started: datetime, cell: CellResult, answers: dict[str, str]) -> None:
    services.traces().write_step(
        p.task.root_id,
        StepRecord(
            instance_id=p.instance_id, step=p.step, iteration=p.iteration, kind=kind, started_at=started, cell=cell, answers=answers
        ),
    )


def _summarize(instance_id: str, cell: CellResult) -> CellSummary:
    """Pending sub-contexts become stored corpora, so children get a corpus id, not text."""
    store = services.store()
    pending = []
    for request in cell.pending:
        corpus_id = None
        if request.sub_context_file:
            corpus_id = save_corpus(store, services.executor().read_sub_context(instance_id, request.sub_context_file))
        pending.append(PendingRef(id=request.id, kind=request.kind, question=TextRef.of(request.question, store), corpus_id=corpus_id))
    final = TextRef.of(cell.final, store) if cell.final is not None else None
    return CellSummary(status=cell.status, pending=pending, final=final, used_sections=cell.used_sections[:500])


def _corpus_head(corpus_id: str, chars: int) -> str:
    store = services.store()
    with store.local_path(store.containers.corpora, corpus_id).open("r", encoding="utf-8", errors="replace") as handle:
        return handle.read(chars)


def _seconds_between(start: str, end: str) -> float:
    return max((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 0.0)
