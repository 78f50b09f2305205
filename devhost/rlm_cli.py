"""The RLM app's commands: `ask` a question over a corpus, run a `batch`, show a `trace`.

They host the RLM function app in-process and resume only the instance they are about
(the query, or the batch and its queries), never other unfinished work in the state dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Console

from devhost.app_runs import (
    another_body,
    configured_settings,
    load_settings,
    problems,
    refuse_another_body,
    run_to_end,
    start_claimed,
    stored_corpus,
)
from devhost.errors import UsageError

if TYPE_CHECKING:
    import azure.durable_functions as df

    from rlm_activities.batch_models import BatchRequest, BatchSummary
    from shared.storage import BlobStore


async def ask(args: argparse.Namespace, console: Console) -> int:
    settings = configured_settings()
    from shared.llm import start_model

    if args.corpus is not None:  # a new query: its CLI boots while the app loads and the corpus is stored
        start_model(settings)
        await asyncio.sleep(0)  # the process starts now; the loop is busy importing until the host runs
    from devhost.progress import ProgressView, print_result
    from rlm_activities import services
    from rlm_activities.orchestrator import ORCHESTRATOR
    from shared.catalog import listing_text
    from shared.models import QueryResult
    from shared.starting import root_task
    from shared.step_models import ROOT_INSTANCE_ID

    instance_id = args.instance_id or uuid.uuid4().hex
    if not re.match(ROOT_INSTANCE_ID, instance_id):
        raise UsageError("--instance-id must be 4-64 letters, digits, '-' or '_', starting with a letter or digit")
    args.resume_hint = (f"query {instance_id} is saved; resume it with: "
                        f"python -m devhost ask --instance-id {instance_id} --state-dir {args.state_dir}")

    label = f"query {instance_id}"
    refusal = another_body(label, "--instance-id")
    given = None
    if args.corpus is not None and args.question:  # off the loop: the Copilot CLI boots meanwhile
        given = await asyncio.to_thread(_request_from_args, args, services.store())
        refuse_another_body("queries", instance_id, given, refusal)

    async def start(client: df.DurableOrchestrationClient) -> None:
        request = given or _request_from_args(args, services.store())

        async def start_new() -> None:
            task = await asyncio.to_thread(root_task, request, instance_id, settings, services.store())
            await client.start_new(ORCHESTRATOR, instance_id, task.model_dump())

        fields = {"question": listing_text(request.question)}
        await start_claimed(client, "queries", instance_id, instance_id, request=request, fields=fields, refusal=refusal,
                            start=start_new)  # fmt: skip

    with ProgressView(Console(stderr=True), instance_id) as view:
        output = await run_to_end(
            args, console, instance_id=instance_id, label=label, start=start, on_status=lambda s: view.update(s.custom_status),
        )  # fmt: skip
    if output is None:
        return 1
    result = QueryResult.model_validate(output)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print_result(console, result)
    return 0


def _request_from_args(args: argparse.Namespace, store: BlobStore):
    from shared.corpus import CorpusError
    from shared.models import QueryOptions, QueryRequest

    if args.corpus is None or not args.question:
        raise UsageError("a new query needs --corpus PATH and --question TEXT")
    try:
        options = QueryOptions(
            max_depth=args.max_depth, max_iterations=args.max_iterations, max_tokens=args.max_tokens,
            max_cost=args.max_cost, deadline_seconds=args.deadline,
        )  # fmt: skip
        return QueryRequest(question=args.question, options=options, corpus_id=stored_corpus(args.corpus, store))
    except CorpusError as exc:
        raise UsageError(str(exc)) from None
    except ValidationError as exc:
        raise UsageError(problems(exc)) from None


async def batch(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rlm_activities import services
    from rlm_activities.batch import submit_batch
    from rlm_activities.batch_models import BATCH_ID, BatchSummary, batch_instance_id, results_key
    from shared.catalog import Outcome

    configured_settings()
    batch_id = args.batch_id or uuid.uuid4().hex
    if not re.match(BATCH_ID, batch_id):
        raise UsageError("--batch-id must be 4-48 letters, digits, '-' or '_', starting with a letter or digit")
    args.resume_hint = (f"batch {batch_id} is saved; resume it with: "
                        f"python -m devhost batch --batch-id {batch_id} --state-dir {args.state_dir}")
    stderr = Console(stderr=True)
    columns = (TextColumn(f"batch {batch_id}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn())

    refusal = another_body(f"batch {batch_id}", "--batch-id")
    given = None
    if args.file is not None and args.corpus is not None:
        given = await asyncio.to_thread(_batch_from_args, args, batch_id, services.store())
        refuse_another_body("batches", batch_id, given, refusal)

    async def start(client: df.DurableOrchestrationClient) -> None:
        """The way a batch posted over HTTP starts: its batch_id claimed once, for one body."""
        request = given or _batch_from_args(args, batch_id, services.store())
        outcome = await submit_batch(client, request, batch_id, sole_host=True)
        if outcome is Outcome.CONFLICT:
            raise refusal

    with Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal) as bar:
        shown = bar.add_task("", total=None, failed=0)

        def show(status: Any) -> None:
            if isinstance(status.custom_status, dict):
                counts = status.custom_status
                bar.update(shown, total=counts.get("total"), completed=counts.get("done", 0), failed=counts.get("failed", 0))

        output = await run_to_end(
            args, console, instance_id=batch_instance_id(batch_id), label=f"batch {batch_id}", start=start, on_status=show,
        )  # fmt: skip
    if output is None:
        return 1
    summary = BatchSummary.model_validate(output)
    if args.json:
        print(summary.model_dump_json(indent=2))
    else:
        store = services.store()
        _print_summary(console, summary, store.local_path(store.containers.results, results_key(batch_id)))
    return 0


def _batch_from_args(args: argparse.Namespace, batch_id: str, store: BlobStore) -> BatchRequest:
    from rlm_activities.batch_models import BatchRequest
    from shared.corpus import CorpusError

    if args.file is None or args.corpus is None:
        raise UsageError("a new batch needs --file QUESTIONS and --corpus PATH")
    try:
        corpus_id = stored_corpus(args.corpus, store)
    except CorpusError as exc:
        raise UsageError(str(exc)) from None
    try:
        text = args.file.read_text(encoding="utf-8")
        if args.file.suffix.lower() == ".jsonl":
            given: object = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            given = json.loads(text)
        body = dict(given) if isinstance(given, dict) else {"questions": given}
        body["batch_id"] = batch_id
        body["corpus_id"] = corpus_id
        if args.concurrency is not None:
            body["concurrency"] = args.concurrency
        if args.strategies:
            body["strategies"] = [s.strip() for s in args.strategies.split(",") if s.strip()]
        if args.judge is not None:
            body["judge"] = args.judge
        return BatchRequest.model_validate(body)
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, ValidationError
        raise UsageError(f"{args.file}: {exc}") from None


def _print_summary(console: Console, summary: BatchSummary, rows: Path) -> None:
    from rich.table import Table

    from devhost.progress import format_cost

    table = Table.grid(padding=(0, 2))
    table.add_row("questions", f"{summary.count} ({summary.answered} answered, {summary.failed} failed)")
    if summary.accuracy is not None:
        table.add_row("accuracy", f"{summary.accuracy:.1%} ({summary.correct} of {summary.with_expected} with an expected answer), F1 {summary.f1:.2f}")
    table.add_row("model calls", f"{summary.usage.model_calls} ({summary.total_tokens} tokens, {summary.usage.cached_tokens} of them cached)")
    if summary.cost is not None:
        table.add_row("cost", format_cost(summary.cost))
    for label, spent in (("judge", summary.judge_usage), ("index build", summary.index_usage)):
        if spent.model_calls:
            cost = f", cost {format_cost(spent.cost)}" if spent.cost is not None else ""
            table.add_row(label, f"{spent.model_calls} calls ({spent.total_tokens} tokens{cost})")
    if summary.latency_seconds is not None:
        lat = summary.latency_seconds
        table.add_row("latency", f"mean {lat.mean:.1f} s, p50 {lat.p50:.1f} s, p95 {lat.p95:.1f} s, max {lat.max:.1f} s")
    console.print(table)
    from devhost.compare_cli import print_strategy_summaries

    print_strategy_summaries(console, summary)
    console.print(f"Rows (JSONL, one per question and strategy): {rows}", soft_wrap=True, markup=False, highlight=False)


async def trace(args: argparse.Namespace, console: Console) -> int:
    from devhost.trace_view import print_trace
    from rlm_activities import services
    from shared.trace import trace_tree

    load_settings()
    tree = trace_tree(services.traces(), args.instance_id)
    if tree is None:
        raise UsageError(f"no trace for query {args.instance_id} in {args.state_dir}")
    if args.json:
        print(tree.model_dump_json(indent=2))
    else:
        print_trace(console, tree)
    return 0
