"""The LLM judge: grades a finished query's answer on the fixed rubrics of shared.grading
(relevance, groundedness against the sections it cites, coherence) and states a pairwise
preference between two answers, through the same model transport as everything else.

Each judgement is stored beside the answer it grades (`traces/{root}/{instance}/judge.json`),
so a retried activity returns the stored one instead of asking the judge again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from pydantic import BaseModel, Field

from shared.grading import (
    JUDGE_SYSTEM_PROMPT,
    RUBRICS,
    JudgeScores,
    Rubric,
    Winner,
    combine_votes,
    pairwise_prompt,
    parse_score,
    parse_winner,
    rubric_prompt,
)
from shared.llm import ModelError
from shared.models import QueryResult, TokenUsage
from shared.payloads import TextRef
from shared.retrieval.passages import section_texts
from shared.steps import Parts
from shared.storage.base import BlobNotFound
from shared.telemetry import spans
from shared.telemetry.context import TraceParent, query_span_id
from shared.trace import InstanceMeta, StepRecord, TraceStore, instance_prefix, utcnow

log = logging.getLogger("rlm.steps")

SECTIONS_CHARS = 24_000
ANSWER_CHARS = 12_000


class JudgeInput(BaseModel):
    root_id: str
    instance_id: str
    model: str


class Judgement(BaseModel):
    """The judge's scores of one answer, with every call it made."""

    model: str
    scores: JudgeScores
    usage: TokenUsage
    calls: list[StepRecord] = Field(default_factory=list)


class PairInput(BaseModel):
    """Which of two finished queries (by instance id) answered the same question better;
    `compare_id` names the comparison (or the batch's question) the pair belongs to."""

    compare_id: str
    a: str
    b: str
    a_label: str
    b_label: str
    expected: TextRef | None = None
    model: str
    trace: TraceParent | None = None  # the comparison's: its span is the judgement's parent


class PairOutput(BaseModel):
    a: str
    b: str
    winner: str
    votes: list[Winner | None]
    usage: TokenUsage


class Preference(PairOutput):
    """A pairwise judgement as stored, with both calls."""

    calls: list[StepRecord]


def pair_inputs(
    compare_id: str, instances: dict[str, str], model: str, expected: TextRef | None = None, trace: TraceParent | None = None
) -> list[PairInput]:
    """Every pair of the answers to one question, by label (a strategy) in the order given:
    what a comparison and a batch's question ask the judge to prefer between."""
    return [
        PairInput(compare_id=compare_id, a=instances[a], b=instances[b], a_label=a, b_label=b, expected=expected, model=model, trace=trace)
        for a, b in itertools.combinations(instances, 2)
    ]  # fmt: skip


def preference_key(compare_id: str, a_label: str, b_label: str) -> str:
    return f"{compare_id}/preferences/{a_label}-{b_label}.json"


def read_preference(traces: TraceStore, compare_id: str, a_label: str, b_label: str) -> Preference | None:
    try:
        data = traces.store.get_bytes(traces.container, preference_key(compare_id, a_label, b_label))
    except BlobNotFound:
        return None
    return Preference.model_validate_json(data)


def judgement_key(root_id: str, instance_id: str) -> str:
    return instance_prefix(root_id, instance_id) + "judge.json"


def read_judgement(traces: TraceStore, root_id: str, instance_id: str) -> Judgement | None:
    try:
        return Judgement.model_validate_json(traces.store.get_bytes(traces.container, judgement_key(root_id, instance_id)))
    except BlobNotFound:
        return None


def _meta(traces: TraceStore, root_id: str, instance_id: str) -> InstanceMeta:
    found = next((m for m in traces.metas(root_id) if m.instance_id == instance_id), None)
    if found is None:
        raise ValueError(f"no query {instance_id} in traces/{root_id}")
    return found


def _cited_sections(parts: Parts, corpus_id: str, result: QueryResult) -> str:
    """The text of the sections the answer cites, cut to what a judge prompt can hold."""
    titles = [s.title for s in result.sources]
    if not titles:
        return ""
    context = parts.store.local_path(parts.store.containers.corpora, corpus_id).read_text(encoding="utf-8")
    found = section_texts(context, titles)
    text = "\n\n".join(f"## {title}\n{found[title]}" for title in titles if title in found)
    if len(text) > SECTIONS_CHARS:
        text = text[:SECTIONS_CHARS] + f"\n[cited sections cut to their first {SECTIONS_CHARS} characters]"
    return text


async def _ask(parts: Parts, model: str, prompt: str, instance_id: str, step: int) -> tuple[str | None, StepRecord]:
    """One judge call; a model failure is recorded and gives no reply, never an exception."""
    started = utcnow()
    try:
        reply, usage = await parts.chat(model, JUDGE_SYSTEM_PROMPT, prompt)
    except ModelError as exc:
        log.warning("judge instance=%s failed: %s", instance_id, exc)
        record = StepRecord(instance_id=instance_id, step=step, iteration=0, kind="judge", started_at=started, model=model, prompt=prompt, usage=TokenUsage(model_calls=1), error=str(exc))  # fmt: skip
        return None, record
    record = StepRecord(instance_id=instance_id, step=step, iteration=0, kind="judge", started_at=started, model=model, prompt=prompt, reply=reply.text, usage=usage)  # fmt: skip
    return reply.text, record


async def judge_answer(payload: dict[str, Any], parts: Parts) -> dict[str, Any]:
    """Scores of a finished query's answer on each rubric (None where the judge gave none)."""
    p = JudgeInput.model_validate(payload)
    stored = await asyncio.to_thread(read_judgement, parts.traces, p.root_id, p.instance_id)
    if stored is not None:
        return stored.scores.model_dump()
    result = await asyncio.to_thread(parts.traces.result, p.root_id, p.instance_id)
    if result is None or result.failed:
        return JudgeScores().model_dump()
    meta = await asyncio.to_thread(_meta, parts.traces, p.root_id, p.instance_id)
    answer = (await asyncio.to_thread(result.answer_ref.resolve, parts.store))[:ANSWER_CHARS]
    sections = await asyncio.to_thread(_cited_sections, parts, meta.corpus_id, result)
    prompts: dict[Rubric, str] = {r: rubric_prompt(r, meta.question, answer, sections) for r in RUBRICS}
    # The judgement joins the trace of the answer it grades, under that query's span.
    judged = TraceParent(trace_id=result.trace_id) if result.trace_id else TraceParent.of_root(p.root_id)
    attributes = {"rlm.root_id": p.root_id, "rlm.instance_id": p.instance_id, "rlm.judge.model": p.model}
    with spans.step_span("judge", judged, query_span_id(judged.trace_id, p.instance_id), attributes):
        asked = await asyncio.gather(
            *(_ask(parts, p.model, prompts[r], p.instance_id, n) for n, r in enumerate(RUBRICS, start=1))
        )
    scores = JudgeScores(**{r: parse_score(reply) if reply else None for r, (reply, _) in zip(RUBRICS, asked, strict=True)})
    judgement = Judgement(
        model=p.model,
        scores=scores,
        usage=sum((rec.usage or TokenUsage() for _, rec in asked), TokenUsage()),
        calls=[rec for _, rec in asked],
    )
    await asyncio.to_thread(
        parts.traces.store.put_text, parts.traces.container, judgement_key(p.root_id, p.instance_id), judgement.model_dump_json()
    )
    log.info("judge instance=%s scores=%s", p.instance_id, scores.model_dump())
    return scores.model_dump()


async def judge_pair(payload: dict[str, Any], parts: Parts) -> dict[str, Any]:
    """The preferred of two answers: asked twice, A/B and B/A, and a winner only if both agree."""
    p = PairInput.model_validate(payload)
    stored = await asyncio.to_thread(read_preference, parts.traces, p.compare_id, p.a_label, p.b_label)
    if stored is not None:  # a retried activity: the judge was asked already
        return PairOutput.model_validate(stored.model_dump(exclude={"calls"})).model_dump()
    results = [await asyncio.to_thread(parts.traces.result, iid, iid) for iid in (p.a, p.b)]
    if any(r is None or r.failed for r in results):
        raise ValueError(f"both {p.a} and {p.b} must have answered")
    a_text, b_text = [(await asyncio.to_thread(r.answer_ref.resolve, parts.store))[:ANSWER_CHARS] for r in results if r]
    question = (await asyncio.to_thread(_meta, parts.traces, p.a, p.a)).question
    expected = await asyncio.to_thread(p.expected.resolve, parts.store) if p.expected else None
    prompts = [pairwise_prompt(question, a_text, b_text, expected), pairwise_prompt(question, b_text, a_text, expected)]
    label = f"{p.compare_id}-{p.a_label}-vs-{p.b_label}"
    parent = int(p.trace.parent_span_id, 16) if p.trace and p.trace.parent_span_id else None
    attributes = {"rlm.compare_id": p.compare_id, "rlm.judge.pair": f"{p.a_label} vs {p.b_label}", "rlm.judge.model": p.model}
    with spans.step_span("judge", p.trace, parent, attributes):
        asked = await asyncio.gather(*(_ask(parts, p.model, prompt, label, n) for n, prompt in enumerate(prompts, start=1)))
    votes = [parse_winner(reply) if reply else None for reply, _ in asked]
    combined = combine_votes(votes[0], votes[1])
    winner = {"a": p.a_label, "b": p.b_label}.get(combined, "tie")
    usage = sum((rec.usage or TokenUsage() for _, rec in asked), TokenUsage())
    output = PairOutput(a=p.a_label, b=p.b_label, winner=winner, votes=votes, usage=usage)
    record = Preference(**output.model_dump(), calls=[rec for _, rec in asked])
    key = preference_key(p.compare_id, p.a_label, p.b_label)
    await asyncio.to_thread(parts.traces.store.put_text, parts.traces.container, key, record.model_dump_json())
    return output.model_dump()
