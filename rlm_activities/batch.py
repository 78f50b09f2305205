"""Batches: many questions over one corpus, each a root `rlm_orchestrator` run as a
sub-orchestration, at most `concurrency` at a time, then JSONL rows and a summary.

The orchestrator keeps a sliding window with `task_any`: as one query ends the next
starts, so a slow question does not hold a whole wave back. A failed query is a failed
row, never a failed batch. Questions are read from a blob a page at a time, so no
history event grows with the batch.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from rlm_activities import services
from rlm_activities.batch_models import (
    BATCH_ORCHESTRATOR,
    QUESTIONS_PAGE,
    BatchProgress,
    BatchRequest,
    BatchTask,
    PageInput,
    PageOutput,
    StoredQuestion,
    WriteInput,
    batch_instance_id,
    query_instance_id,
    questions_key,
    results_key,
    summary_key,
)
from rlm_activities.batch_results import build_row, summarize
from rlm_activities.orchestrator import ORCHESTRATOR
from rlm_activities.starts import start_once
from shared.catalog import Catalog, Outcome, body_digest
from shared.config import Settings
from shared.models import QueryRequest
from shared.payloads import TextRef
from shared.starting import root_task, store_request_corpus
from shared.step_models import QUESTION_INLINE
from shared.storage.base import BlobStore

bp = df.Blueprint()

STORAGE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
ERROR_CHARS = 200

Steps = Generator[Any, Any, Any]


def prepare_batch(request: BatchRequest, batch_id: str, settings: Settings, store: BlobStore) -> BatchTask:
    """Store the corpus and the questions; resolve options once, as for a single query.

    Raises CorpusError for an unknown corpus id.
    """
    first = QueryRequest(
        question=request.questions[0].question,
        corpus=request.corpus,
        documents=request.documents,
        corpus_id=request.corpus_id,
        options=request.options,
    )
    template = root_task(first, batch_instance_id(batch_id), settings, store)
    questions = [
        StoredQuestion(id=q.id or str(n), question=q.question, expected=q.expected)
        for n, q in enumerate(request.questions, start=1)
    ]
    body = json.dumps([q.model_dump() for q in questions])
    store.put_text(store.containers.payloads, questions_key(batch_id), body)
    return BatchTask(
        batch_id=batch_id,
        count=len(questions),
        concurrency=request.concurrency or settings.batch_concurrency,
        template=template,
    )


def load_questions(store: BlobStore, batch_id: str) -> list[StoredQuestion]:
    raw = json.loads(store.get_text(store.containers.payloads, questions_key(batch_id)))
    return [StoredQuestion.model_validate(q) for q in raw]


@bp.orchestration_trigger(context_name="context", orchestration=BATCH_ORCHESTRATOR)
def rlm_batch(context: df.DurableOrchestrationContext) -> Steps:
    batch = BatchTask.model_validate(context.get_input())
    return (yield from BatchRun(context, batch).run())


class BatchRun:
    """The window of running queries and the counts shown as custom status."""

    def __init__(self, context: df.DurableOrchestrationContext, batch: BatchTask) -> None:
        self.context = context
        self.batch = batch
        self.questions: list[TextRef] = []
        self.running: dict[Any, int] = {}
        self.errors: dict[int, str] = {}
        self.progress = BatchProgress(phase="running", total=batch.count)

    def run(self) -> Steps:
        started_at = self.context.current_utc_datetime.isoformat()
        next_index = 0
        self._report()
        while next_index < self.batch.count or self.running:
            while next_index < self.batch.count and len(self.running) < self.batch.concurrency:
                yield from self._start(next_index)
                next_index += 1
            self._report()
            finished = yield self.context.task_any(list(self.running))
            index = self.running.pop(finished)
            if isinstance(finished.result, Exception):
                self.errors[index] = str(finished.result)[:ERROR_CHARS]
                self.progress.failed += 1
            self.progress.done += 1
        self.progress.phase = "writing results"
        self._report()
        write = WriteInput(
            batch_id=self.batch.batch_id,
            count=self.batch.count,
            errors=self.errors,
            started_at=started_at,
            ended_at=self.context.current_utc_datetime.isoformat(),
        )
        summary = yield self.context.call_activity_with_retry("write_batch_results", STORAGE_RETRY, write.model_dump())
        self.progress.phase = "done"
        self._report()
        return summary

    def _start(self, index: int) -> Steps:
        if index >= len(self.questions):
            page = PageInput(batch_id=self.batch.batch_id, start=index, count=QUESTIONS_PAGE)
            output = yield self.context.call_activity_with_retry("batch_questions", STORAGE_RETRY, page.model_dump())
            self.questions.extend(PageOutput.model_validate(output).questions)
        instance_id = query_instance_id(self.batch.batch_id, index)
        # Each question is a root query with a trace of its own (derived from its id, so replays agree).
        task = self.batch.template.model_copy(update={"question": self.questions[index], "root_id": instance_id, "trace": None})
        self.running[self.context.call_sub_orchestrator(ORCHESTRATOR, task.model_dump(), instance_id)] = index

    def _report(self) -> None:
        self.progress.running = len(self.running)
        self.context.set_custom_status(self.progress.model_dump())


@bp.activity_trigger(input_name="payload")
def batch_questions(payload: dict) -> dict:
    """A page of questions as references (long ones stay in blob storage)."""
    p = PageInput.model_validate(payload)
    store = services.store()
    page = load_questions(store, p.batch_id)[p.start : p.start + p.count]
    return PageOutput(questions=[TextRef.of(q.question, store, limit=QUESTION_INLINE) for q in page]).model_dump()


@bp.activity_trigger(input_name="payload")
def write_batch_results(payload: dict) -> dict:
    """Rows from each query's stored result, as JSONL, and the summary; returns the summary."""
    p = WriteInput.model_validate(payload)
    store = services.store()
    traces = services.traces()
    rows = []
    for index, question in enumerate(load_questions(store, p.batch_id)[: p.count]):
        instance_id = query_instance_id(p.batch_id, index)
        result = traces.result(instance_id, instance_id)
        answer = result.answer_ref.resolve(store) if result else None
        rows.append(build_row(p.batch_id, index, question, result, answer, p.errors.get(index)))
    container = store.containers.results
    results, summary_path = f"{container}/{results_key(p.batch_id)}", f"{container}/{summary_key(p.batch_id)}"
    summary = summarize(p.batch_id, rows, p.started_at, p.ended_at, results, summary_path)
    store.put_text(container, results_key(p.batch_id), "".join(row.model_dump_json() + "\n" for row in rows))
    store.put_text(container, summary_key(p.batch_id), summary.model_dump_json(indent=2))
    return summary.model_dump()


async def submit_batch(client: df.DurableOrchestrationClient, request: BatchRequest, batch_id: str) -> Outcome:
    """Start the batch once per batch_id: NEW when this call started it, SAME when that
    body already started (or is starting) it, CONFLICT when another body did.

    Only the start that wins the claim writes the batch's questions, so a racing body
    never mixes its questions with another's corpus. Raises CorpusError for an unknown
    corpus id, before anything is claimed.
    """
    store, settings = services.store(), services.settings()
    await asyncio.to_thread(store_request_corpus, request, store)
    instance_id = batch_instance_id(batch_id)

    async def start() -> None:
        task = await asyncio.to_thread(prepare_batch, request, batch_id, settings, store)
        await client.start_new(BATCH_ORCHESTRATOR, instance_id, task.model_dump())

    fields = {"questions": len(request.questions)}
    return await start_once(
        client, Catalog(store), "batches", batch_id, instance_id, digest=body_digest(request), fields=fields, start=start
    )
