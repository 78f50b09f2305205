"""The baselines' steps: the only retrieval code that touches the indexes, the model and
storage. Each takes and returns a small JSON-able dict (see shared.retrieval.models) and is
safe to run twice: trace keys are deterministic and indexes are built once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.config import Settings
from shared.corpus import load_index
from shared.llm import ModelReply
from shared.models import QueryResult, Source, TokenUsage
from shared.payloads import TextRef
from shared.retrieval.indexes import RetrievalIndexes
from shared.retrieval.models import (
    AnswerInput,
    AnswerOutput,
    PrepareInput,
    RewriteInput,
    RewriteOutput,
    SearchInput,
    SearchOutput,
    StrategyFinishInput,
    StrategyStep,
    search_mode,
)
from shared.retrieval.passages import Passage
from shared.retrieval.prompts import (
    ANSWER_SYSTEM_PROMPT,
    REWRITE_SYSTEM_PROMPT,
    parse_rewrite,
    render_answer_message,
    render_rewrite_message,
)
from shared.steps import RESULT_ANSWER_INLINE, Parts
from shared.storage import BlobStore
from shared.telemetry import spans
from shared.telemetry.spans import traced
from shared.trace import InstanceMeta, RetrievalDetail, RetrievedPassage, StepRecord, TraceStore, utcnow

log = logging.getLogger("rlm.steps")


@dataclass(frozen=True)
class RetrievalParts:
    """The long-lived things the baselines use (the RLM's, and the indexes); one set per worker process."""

    parts: Parts
    indexes: RetrievalIndexes

    @classmethod
    def from_parts(cls, parts: Parts) -> RetrievalParts:
        return cls(parts, RetrievalIndexes(parts.settings, parts.store))

    @property
    def settings(self) -> Settings:
        return self.parts.settings

    @property
    def store(self) -> BlobStore:
        return self.parts.store

    @property
    def traces(self) -> TraceStore:
        return self.parts.traces

    async def chat(self, model: str, system: str, prompt: str) -> tuple[ModelReply, TokenUsage]:
        return await self.parts.chat(model, system, prompt)


def _hits(passages: list[Passage], scores: dict[int, float]) -> list[RetrievedPassage]:
    return [
        RetrievedPassage(passage=p.id, title=p.title, document_id=p.document_id, score=scores.get(p.id, 0.0)) for p in passages
    ]


async def prepare_indexes(payload: dict[str, Any], parts: RetrievalParts) -> dict[str, Any]:
    """Build the indexes the strategies need, before many queries search them at once."""
    p = PrepareInput.model_validate(payload)
    parent = int(p.trace.parent_span_id, 16) if p.trace and p.trace.parent_span_id else None
    with spans.step_span("index", p.trace, parent, {"rlm.corpus_id": p.corpus_id}):
        return (await parts.indexes.ensure(p.corpus_id, p.strategies)).model_dump()


@traced("index")
async def index_step(payload: dict[str, Any], parts: RetrievalParts) -> dict[str, Any]:
    """Register the instance in the trace and make sure its indexes exist."""
    p = StrategyStep.model_validate(payload)
    started = utcnow()
    question = await asyncio.to_thread(p.task.question.resolve, parts.store)
    corpus = await asyncio.to_thread(load_index, parts.store, p.task.corpus_id)
    meta = InstanceMeta(
        instance_id=p.instance_id, root_id=p.task.root_id, parent_id=None, depth=0, question=question,
        corpus_id=p.task.corpus_id, context_chars=corpus.chars, started_at=started, strategy=p.task.strategy,
    )  # fmt: skip
    await asyncio.to_thread(parts.traces.write_meta, p.task.root_id, meta)
    output = await parts.indexes.ensure(p.task.corpus_id, {p.task.strategy})
    record = StepRecord(
        instance_id=p.instance_id, step=p.step, iteration=p.round, kind="index", started_at=started,
        model=parts.settings.embedding_model if "vector" in output.built else None,
        usage=output.usage, retrieval=RetrievalDetail(built=output.built, reused=output.reused),
    )  # fmt: skip
    await asyncio.to_thread(parts.traces.write_step, p.task.root_id, record)
    log.info("index instance=%s built=%s reused=%s passages=%d", p.instance_id, output.built, output.reused, output.passages)
    return output.model_dump()


@traced("retrieve")
async def search_step(payload: dict[str, Any], parts: RetrievalParts) -> dict[str, Any]:
    """One retrieval: the query's best passages by the strategy's search."""
    p = SearchInput.model_validate(payload)
    started = utcnow()
    query = await asyncio.to_thread(p.query.resolve, parts.store)
    mode = search_mode(p.task.strategy)
    ranked, usage = await parts.indexes.search(p.task.corpus_id, mode, query, p.task.top_k)
    found = await asyncio.to_thread(parts.indexes.passage_index(p.task.corpus_id).passages, [i for i, _ in ranked])
    record = StepRecord(
        instance_id=p.instance_id, step=p.step, iteration=p.round, kind="retrieve", started_at=started,
        model=parts.settings.embedding_model if mode != "keyword" else None, prompt=query, usage=usage,
        retrieval=RetrievalDetail(query=query, hits=_hits(found, dict(ranked))),
    )  # fmt: skip
    await asyncio.to_thread(parts.traces.write_step, p.task.root_id, record)
    log.info("retrieve instance=%s mode=%s round=%d hits=%d", p.instance_id, mode, p.round, len(found))
    return SearchOutput(hits=[passage.id for passage in found], usage=usage).model_dump()


@traced("rewrite")
async def rewrite_step(payload: dict[str, Any], parts: RetrievalParts) -> dict[str, Any]:
    """Agentic retrieval: the model reads what was found and asks for another search, or stops."""
    p = RewriteInput.model_validate(payload)
    started = utcnow()
    question = await asyncio.to_thread(p.task.question.resolve, parts.store)
    found = await asyncio.to_thread(parts.indexes.passage_index(p.task.corpus_id).passages, p.passages)
    prompt = render_rewrite_message(question, [question, *p.queries], found)
    reply, usage = await parts.chat(p.task.rewrite_model, REWRITE_SYSTEM_PROMPT, prompt)
    query = parse_rewrite(reply.text, [question, *p.queries])
    record = StepRecord(
        instance_id=p.instance_id, step=p.step, iteration=p.round, kind="rewrite", started_at=started,
        model=p.task.rewrite_model, prompt=prompt, reply=reply.text, usage=usage, retrieval=RetrievalDetail(query=query),
    )  # fmt: skip
    await asyncio.to_thread(parts.traces.write_step, p.task.root_id, record)
    return RewriteOutput(query=query, usage=usage).model_dump()


@traced("answer")
async def answer_step(payload: dict[str, Any], parts: RetrievalParts) -> dict[str, Any]:
    """The one model call that answers from the top passages; they are the answer's sources."""
    p = AnswerInput.model_validate(payload)
    started = utcnow()
    question = await asyncio.to_thread(p.task.question.resolve, parts.store)
    passages = await asyncio.to_thread(parts.indexes.passage_index(p.task.corpus_id).passages, p.passages)
    prompt = render_answer_message(question, passages)
    reply, usage = await parts.chat(p.task.model, ANSWER_SYSTEM_PROMPT, prompt)
    record = StepRecord(
        instance_id=p.instance_id, step=p.step, iteration=p.round, kind="answer", started_at=started, model=p.task.model,
        prompt=prompt, reply=reply.text, usage=usage, retrieval=RetrievalDetail(hits=_hits(passages, {})),
    )  # fmt: skip
    await asyncio.to_thread(parts.traces.write_step, p.task.root_id, record)
    sources = list(
        {(s.title, s.document_id): s for s in (Source(title=x.title, document_id=x.document_id) for x in passages)}.values()
    )
    answer = await asyncio.to_thread(TextRef.of, reply.text, parts.store)
    return AnswerOutput(answer=answer, sources=sources, usage=usage).model_dump()


@traced("finish")
def finish_step(payload: dict[str, Any], parts: RetrievalParts) -> dict[str, Any]:
    """Write the result beside the trace, in the same shape as an RLM query's."""
    p = StrategyFinishInput.model_validate(payload)
    answer = p.answer.resolve(parts.store)
    inline = TextRef.of(answer, parts.store, limit=RESULT_ANSWER_INLINE)
    seconds = (datetime.fromisoformat(p.ended_at) - datetime.fromisoformat(p.started_at)).total_seconds()
    result = QueryResult(
        answer=inline.text,
        answer_key=inline.key,
        failed=p.outcome == "failed",
        iterations=p.rounds,
        sources=p.sources,
        usage=p.usage,
        cost=sum(p.usage.values(), TokenUsage()).cost,
        duration_seconds=max(seconds, 0.0),
        instance_id=p.instance_id,
        trace=f"{parts.store.containers.traces}/{p.task.root_id}/",
        trace_id=p.task.trace_parent.trace_id,
        error=p.error,
    )
    parts.traces.write_result(p.task.root_id, result)
    spans.strategy_finished(p, result)
    log.info("finish instance=%s strategy=%s outcome=%s rounds=%d", p.instance_id, p.task.strategy, p.outcome, p.rounds)
    return result.model_dump()


STEPS = {
    "retrieval_index": index_step,
    "retrieval_search": search_step,
    "retrieval_rewrite": rewrite_step,
    "retrieval_answer": answer_step,
    "retrieval_finish": finish_step,
}
