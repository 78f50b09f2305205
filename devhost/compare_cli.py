"""`python -m devhost compare` and the per-strategy tables of `batch`: RLM and the
retrieval baselines side by side on a terminal."""

from __future__ import annotations

import argparse
import re
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rlm_activities.batch_models import BatchSummary
    from shared.compare import CompareRequest, CompareResult
    from shared.storage import BlobStore

ALL_STRATEGIES = "rlm,keyword,vector,hybrid,agentic"


def add_compare_parser(commands: Any, state_dir_default: Any) -> None:
    from pathlib import Path

    compare = commands.add_parser("compare", help="answer one question with RLM and the retrieval baselines, side by side")
    compare.add_argument(
        "--corpus", type=Path, help="a text file, a folder of .txt/.md files, or a .jsonl of {id?, title, content}"
    )
    compare.add_argument("--question", help="the question to answer")
    compare.add_argument("--strategies", default=ALL_STRATEGIES, help=f"comma-separated, from {ALL_STRATEGIES} (default: all)")
    compare.add_argument("--expected", help="the right answer, to score exact match and F1")
    compare.add_argument("--no-judge", action="store_true", help="skip the LLM judge's scores and preferences")
    compare.add_argument("--compare-id", help="resume (or read the result of) this comparison")
    compare.add_argument("--state-dir", type=Path, default=state_dir_default, help="where histories, corpora and traces live")
    compare.add_argument("--json", action="store_true", help="print the result object as JSON")


def strategies_arg(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _request(args: argparse.Namespace, store: BlobStore) -> CompareRequest:
    from devhost.app_runs import stored_corpus
    from devhost.errors import UsageError
    from shared.compare import CompareRequest
    from shared.corpus import CorpusError

    if args.corpus is None or not args.question:
        raise UsageError("a new comparison needs --corpus PATH and --question TEXT")
    try:
        return CompareRequest.model_validate(
            {
                "question": args.question,
                "corpus_id": stored_corpus(args.corpus, store),
                "strategies": strategies_arg(args.strategies),
                "expected": args.expected,
                "judge": not args.no_judge,
            }
        )
    except (CorpusError, ValidationError) as exc:
        raise UsageError(str(exc)) from None


async def compare(args: argparse.Namespace, console: Console) -> int:
    import asyncio

    from devhost.app_runs import another_body, configured_settings, refuse_another_body, run_to_end, start_claimed
    from devhost.errors import UsageError
    from rlm_activities import services
    from shared.catalog import listing_text
    from shared.compare import COMPARE_ID, COMPARE_ORCHESTRATOR, CompareResult, compare_task

    settings = configured_settings()
    compare_id = args.compare_id or uuid.uuid4().hex
    if not re.match(COMPARE_ID, compare_id):
        raise UsageError("--compare-id must be 4-48 letters, digits, '-' or '_', starting with a letter or digit")
    args.resume_hint = (
        f"comparison {compare_id} is saved; resume it with: "
        f"python -m devhost compare --compare-id {compare_id} --state-dir {args.state_dir}"
    )
    stderr = Console(stderr=True)

    def show(status: Any) -> None:
        if stderr.is_terminal and isinstance(status.custom_status, dict):
            states = ", ".join(f"{k} {v}" for k, v in status.custom_status.get("strategies", {}).items())
            stderr.print(f"[dim]{status.custom_status.get('phase')}: {states}[/dim]", end="\r")

    label = f"comparison {compare_id}"
    refusal = another_body(label, "--compare-id")
    given = None
    if args.corpus is not None and args.question:
        given = await asyncio.to_thread(_request, args, services.store())
        refuse_another_body("comparisons", compare_id, given, refusal)

    async def start(client: Any) -> None:
        request = given or _request(args, services.store())

        async def start_new() -> None:
            task = await asyncio.to_thread(compare_task, request, compare_id, settings, services.store())
            await client.start_new(COMPARE_ORCHESTRATOR, compare_id, task.model_dump())

        fields = {"question": listing_text(request.question), "strategies": request.strategies}
        await start_claimed(client, "comparisons", compare_id, compare_id, request=request, fields=fields, refusal=refusal,
                            start=start_new)  # fmt: skip

    output = await run_to_end(args, console, instance_id=compare_id, label=label, start=start, on_status=show)
    if output is None:
        return 1
    result = CompareResult.model_validate(output)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print_compare(console, result, compare_id)
    return 0


def _cost(cost: float | None) -> str:
    from devhost.progress import format_cost

    return "-" if cost is None else format_cost(cost)


def _score(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def print_compare(console: Console, result: CompareResult, compare_id: str) -> None:
    table = Table(title=f"{result.question}", caption=f"comparison {compare_id}", show_lines=True)
    for column in ("strategy", "answer", "sources", "seconds", "calls", "tokens", "cost", "EM", "F1", "rel", "grnd", "coh"):
        table.add_column(column, overflow="fold")
    for row in result.strategies:
        s = row.scores
        table.add_row(
            row.strategy,
            row.answer if row.error is None else f"[red]failed: {row.error}[/red]",
            "; ".join(src.title for src in row.sources[:5]) + (" ..." if len(row.sources) > 5 else ""),
            _score(row.latency_seconds),
            str(row.usage.model_calls),
            str(row.usage.prompt_tokens + row.usage.completion_tokens),
            _cost(row.cost),
            *(_score(v) for v in (s.exact_match, s.f1, s.relevance, s.groundedness, s.coherence)),
        )
    console.print(table)
    if result.preference:
        console.print("Judge's preference: " + "; ".join(f"{p.a} vs {p.b}: {p.winner}" for p in result.preference))
    if result.judge_usage.model_calls:
        console.print(f"Judge: {result.judge_usage.model_calls} calls, cost {_cost(result.judge_usage.cost)}")
    if result.cost is not None:
        console.print(f"Total cost (strategies, index build and judge): {_cost(result.cost)}")


def _preference(tally: Any) -> str:
    """Wins/ties/losses in the judge's pairwise preferences, and the win rate (a tie counts half)."""
    if tally is None:
        return "-"
    return f"{tally.wins}/{tally.ties}/{tally.losses} ({_score(tally.win_rate)})"


def print_strategy_summaries(console: Console, summary: BatchSummary) -> None:
    if summary.strategies:
        preferred = any(s.preference for s in summary.strategies.values())
        caption = "preferred: wins/ties/losses against the other strategies' answers (win rate)" if preferred else None
        table = Table(title="Per strategy", caption=caption)
        for column in ("strategy", "answered", "accuracy", "F1", "relevance", "groundedness", "coherence", "preferred", "p50 s",
                       "calls", "tokens", "cost"):  # fmt: skip
            table.add_column(column)
        for name, s in summary.strategies.items():
            judge = s.judge
            table.add_row(
                name,
                f"{s.answered}/{s.count}",
                _score(s.accuracy),
                _score(s.f1),
                *(_score(getattr(judge, r)) if judge else "-" for r in ("relevance", "groundedness", "coherence")),
                _preference(s.preference),
                _score(s.latency_seconds.p50) if s.latency_seconds else "-",
                str(s.usage.model_calls),
                str(s.usage.prompt_tokens + s.usage.completion_tokens),
                _cost(s.cost),
            )
        console.print(table)
    print_kind_summaries(console, summary)


def print_kind_summaries(console: Console, summary: BatchSummary) -> None:
    """Accuracy and F1 by the questions' kind, one column per strategy."""
    by_strategy = {name: s.kinds for name, s in (summary.strategies or {}).items()} or {"all": summary.kinds}
    kinds = sorted({kind for split in by_strategy.values() for kind in split or {}})
    if not kinds:
        return
    table = Table(title="By kind of question", caption="accuracy / F1 over the questions of each kind")
    table.add_column("kind")
    for name in by_strategy:
        table.add_column(name)
    for kind in kinds:
        cells = []
        for split in by_strategy.values():
            found = (split or {}).get(kind)
            cells.append(f"{_score(found.accuracy)} / {_score(found.f1)}" if found else "-")
        table.add_row(f"{kind} ({next(s[kind].count for s in by_strategy.values() if s and kind in s)})", *cells)
    console.print(table)
