"""Batches: many questions over one corpus, each answered by every strategy the batch
names (RLM, the retrieval baselines) as a sub-orchestration, at most `concurrency` at a
time, then JSONL rows and a summary.

The orchestrator keeps a sliding window with `task_any`: as one query ends the next
starts, so a slow question does not hold a whole wave back; the judge's grading of an
answer, when asked for, runs in the same window, and so do its pairwise preferences
between the strategies' answers to a question once every strategy has finished it. A
failed query is a failed row, never a failed batch. Questions are read from a blob a page
at a time, so no history event grows with the batch.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Generator
from typing import Any, NamedTuple

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
    preference_group,
    query_instance_id,
    questions_key,
    results_key,
    summary_key,
)
from rlm_activities.batch_results import build_row, summarize
from rlm_activities.orchestrator import MODEL_RETRY, ORCHESTRATOR
from rlm_activities.retrieval import STRATEGY_ORCHESTRATOR
from rlm_activities.starts import start_once
from shared.catalog import Catalog, Outcome, body_digest
from shared.config import Settings
from shared.grading import verdicts
from shared.judge import JudgeInput, pair_inputs, read_judgement, read_preference
from shared.models import QueryRequest, TokenUsage
from shared.payloads import TextRef
from shared.retrieval.loop import strategy_task
from shared.retrieval.models import IndexOutput, PrepareInput, Strategy
from shared.starting import check_cost_budget, root_task, store_request_corpus
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
    by_id = first.model_copy(update={"corpus": None, "documents": None, "corpus_id": template.corpus_id})
    baselines = {
        s: strategy_task(by_id, s, batch_instance_id(batch_id), settings, store) for s in request.strategies if s != "rlm"
    }
    questions = [
        StoredQuestion(id=q.id or str(n), question=q.question, expected=q.expected, kind=q.kind)
        for n, q in enumerate(request.questions, start=1)
    ]
    body = json.dumps([q.model_dump() for q in questions])
    store.put_text(store.containers.payloads, questions_key(batch_id), body)
    return BatchTask(
        batch_id=batch_id,
        count=len(questions),
        concurrency=request.concurrency or settings.batch_concurrency,
        template=template,
        strategies=request.strategies,
        baselines=baselines,
        judge_model=settings.judge if request.judged else None,
    )


def load_questions(store: BlobStore, batch_id: str) -> list[StoredQuestion]:
    raw = json.loads(store.get_text(store.containers.payloads, questions_key(batch_id)))
    return [StoredQuestion.model_validate(q) for q in raw]


@bp.orchestration_trigger(context_name="context", orchestration=BATCH_ORCHESTRATOR)
def rlm_batch(context: df.DurableOrchestrationContext) -> Steps:
    batch = BatchTask.model_validate(context.get_input())
    return (yield from BatchRun(context, batch).run())


class Work(NamedTuple):
    """What a task of the window is: a query, the judge's grading of one answer, or its
    preferences between the answers to question `index`."""

    kind: str
    instance_id: str
    index: int
    strategy: Strategy | None = None


class BatchRun:
    """The window of running work (queries, the judge's grading of their answers and its
    preferences between them) and the counts shown as custom status."""

    def __init__(self, context: df.DurableOrchestrationContext, batch: BatchTask) -> None:
        self.context = context
        self.batch = batch
        self.questions: list[TextRef] = []
        self.expected: list[TextRef | None] = []
        self.running: dict[Any, Work] = {}
        self.errors: dict[str, str] = {}
        # Per question, the strategies that finished it and whether each answered.
        self.finished: dict[int, dict[Strategy, bool]] = {}
        self.index_usage = TokenUsage()
        self.progress = BatchProgress(phase="running", total=batch.count * len(batch.strategies))

    def run(self) -> Steps:
        started_at = self.context.current_utc_datetime.isoformat()
        self._report()
        if self.batch.baselines:
            yield from self._prepare_indexes()
        work = [(index, strategy) for index in range(self.batch.count) for strategy in self.batch.strategies]
        next_item = 0
        while next_item < len(work) or self.running:
            while next_item < len(work) and len(self.running) < self.batch.concurrency:
                yield from self._start(*work[next_item])
                next_item += 1
            self._report()
            finished = yield self.context.task_any(list(self.running))
            done = self.running.pop(finished)
            if done.kind != "query":
                continue
            answered = not isinstance(finished.result, Exception)
            if not answered:
                self.errors[done.instance_id] = str(finished.result)[:ERROR_CHARS]
                self.progress.failed += 1
            elif self.batch.judge_model:
                self._judge(done)
            self.progress.done += 1
            self._finished(done, answered)
        self.progress.phase = "writing results"
        self._report()
        write = WriteInput(
            batch_id=self.batch.batch_id,
            count=self.batch.count,
            strategies=self.batch.strategies,
            errors=self.errors,
            index_usage=self.index_usage,
            started_at=started_at,
            ended_at=self.context.current_utc_datetime.isoformat(),
        )
        summary = yield self.context.call_activity_with_retry("write_batch_results", STORAGE_RETRY, write.model_dump())
        self.progress.phase = "done"
        self._report()
        return summary

    def _prepare_indexes(self) -> Steps:
        """Build the corpus's indexes once, before the window runs many queries over them."""
        self.progress.phase = "indexing"
        self._report()
        prepare = PrepareInput(corpus_id=self.batch.template.corpus_id, strategies=self.batch.strategies)
        try:
            built = yield self.context.call_activity_with_retry("prepare_indexes", MODEL_RETRY, prepare.model_dump())
            self.index_usage = IndexOutput.model_validate(built).usage
        except Exception:  # noqa: BLE001 - each baseline query retries it and fails its own row
            pass
        self.progress.phase = "running"

    def _start(self, index: int, strategy: Strategy) -> Steps:
        if index >= len(self.questions):
            page = PageInput(batch_id=self.batch.batch_id, start=index, count=QUESTIONS_PAGE)
            output = PageOutput.model_validate(
                (yield self.context.call_activity_with_retry("batch_questions", STORAGE_RETRY, page.model_dump()))
            )
            self.questions.extend(output.questions)
            self.expected.extend(output.expected or [None] * len(output.questions))
        instance_id = query_instance_id(self.batch.batch_id, index, strategy)
        update: dict[str, Any] = {"question": self.questions[index], "root_id": instance_id}
        if strategy == "rlm":
            # Each question is a root query with a trace of its own (derived from its id, so replays agree).
            # It ends with the batch.
            name, template, update = ORCHESTRATOR, self.batch.template, update | {"trace": None, "owner_id": self.context.instance_id}
        else:
            name, template = STRATEGY_ORCHESTRATOR, self.batch.baselines[strategy]
        task = template.model_copy(update=update)
        self.running[self.context.call_sub_orchestrator(name, task.model_dump(), instance_id)] = Work(
            "query", instance_id, index, strategy
        )

    def _judge(self, done: Work) -> None:
        assert self.batch.judge_model is not None
        grade = JudgeInput(root_id=done.instance_id, instance_id=done.instance_id, model=self.batch.judge_model)
        task = self.context.call_activity_with_retry("judge_answer", MODEL_RETRY, grade.model_dump())
        self.running[task] = Work("judge", done.instance_id, done.index)

    def _finished(self, done: Work, answered: bool) -> None:
        """Once every strategy has finished a question, the judge prefers between its answers."""
        assert done.strategy is not None
        by_strategy = self.finished.setdefault(done.index, {})
        by_strategy[done.strategy] = answered
        if len(by_strategy) < len(self.batch.strategies):
            return
        del self.finished[done.index]
        instances = {s: query_instance_id(self.batch.batch_id, done.index, s) for s in self.batch.strategies if by_strategy[s]}
        if not self.batch.judge_model or len(instances) < 2:
            return
        group = preference_group(self.batch.batch_id, done.index)
        for pair in pair_inputs(group, instances, self.batch.judge_model, self.expected[done.index]):
            task = self.context.call_activity_with_retry("judge_pair", MODEL_RETRY, pair.model_dump())
            self.running[task] = Work("preference", group, done.index)

    def _report(self) -> None:
        self.progress.running = sum(1 for work in self.running.values() if work.kind == "query")
        self.context.set_custom_status(self.progress.model_dump())


@bp.activity_trigger(input_name="payload")
def batch_questions(payload: dict) -> dict:
    """A page of questions as references (long ones stay in blob storage)."""
    p = PageInput.model_validate(payload)
    store = services.store()
    page = load_questions(store, p.batch_id)[p.start : p.start + p.count]
    return PageOutput(
        questions=[TextRef.of(q.question, store, limit=QUESTION_INLINE) for q in page],
        expected=[TextRef.of(q.expected, store, limit=QUESTION_INLINE) if q.expected is not None else None for q in page],
    ).model_dump()


@bp.activity_trigger(input_name="payload")
def write_batch_results(payload: dict) -> dict:
    """Rows from each query's stored result, as JSONL, and the summary; returns the summary."""
    p = WriteInput.model_validate(payload)
    store = services.store()
    traces = services.traces()
    rows = []
    judge_usage = TokenUsage()
    for index, question in enumerate(load_questions(store, p.batch_id)[: p.count]):
        group = preference_group(p.batch_id, index)
        preferences = [
            found for a, b in itertools.combinations(p.strategies, 2) if (found := read_preference(traces, group, a, b))
        ]
        judge_usage += sum((found.usage for found in preferences), TokenUsage())
        seen = verdicts((found.a, found.b, found.winner) for found in preferences)
        for strategy in p.strategies:
            instance_id = query_instance_id(p.batch_id, index, strategy)
            result = traces.result(instance_id, instance_id)
            answer = result.answer_ref.resolve(store) if result else None
            judged = read_judgement(traces, instance_id, instance_id)
            scores = judged.scores if judged else None
            judge_usage += judged.usage if judged else TokenUsage()
            error = p.errors.get(instance_id)
            rows.append(build_row(instance_id, strategy, question, result, answer, error, scores, seen.get(strategy, {})))
    container = store.containers.results
    results, summary_path = f"{container}/{results_key(p.batch_id)}", f"{container}/{summary_key(p.batch_id)}"
    summary = summarize(
        p.batch_id, rows, p.started_at, p.ended_at, results, summary_path, p.strategies, judge_usage, p.index_usage
    )
    store.put_text(container, results_key(p.batch_id), "".join(row.model_dump_json() + "\n" for row in rows))
    store.put_text(container, summary_key(p.batch_id), summary.model_dump_json(indent=2))
    return summary.model_dump()


async def submit_batch(
    client: df.DurableOrchestrationClient, request: BatchRequest, batch_id: str, *, sole_host: bool = False
) -> Outcome:
    """Start the batch once per batch_id: NEW when this call started it, SAME when that
    body already started (or is starting) it, CONFLICT when another body did.

    Only the start that wins the claim writes the batch's questions, so a racing body
    never mixes its questions with another's corpus. Raises CorpusError for an unknown
    corpus id and UnpricedModels for a cost budget it cannot count, before anything is claimed.
    """
    store, settings = services.store(), services.settings()
    check_cost_budget(request.options, settings)
    await asyncio.to_thread(store_request_corpus, request, store)
    instance_id = batch_instance_id(batch_id)

    async def start() -> None:
        task = await asyncio.to_thread(prepare_batch, request, batch_id, settings, store)
        await client.start_new(BATCH_ORCHESTRATOR, instance_id, task.model_dump())

    fields = {"questions": len(request.questions)}
    return await start_once(
        client, Catalog(store), "batches", batch_id, instance_id, digest=body_digest(request), fields=fields, start=start,
        sole_host=sole_host,
    )  # fmt: skip
