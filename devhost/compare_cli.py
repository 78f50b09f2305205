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


def _request(args: argparse.Namespace) -> CompareRequest:
    from devhost.errors import UsageError
    from shared.compare import CompareRequest
    from shared.corpus import CorpusError, load_corpus_path

    if args.corpus is None or not args.question:
        raise UsageError("a new comparison needs --corpus PATH and --question TEXT")
    try:
        text, documents = load_corpus_path(args.corpus)
        source: dict[str, Any] = {"documents": documents} if documents else {"corpus": text}
        return CompareRequest.model_validate(
            {
                "question": args.question,
                **source,
                "strategies": strategies_arg(args.strategies),
                "expected": args.expected,
                "judge": not args.no_judge,
            }
        )
    except (CorpusError, ValidationError) as exc:
        raise UsageError(str(exc)) from None


async def compare(args: argparse.Namespace, console: Console) -> int:
    from devhost.errors import UsageError
    from devhost.rlm_cli import configured_settings, run_to_end
    from rlm_activities import services
    from shared.compare import COMPARE_ID, COMPARE_ORCHESTRATOR, CompareResult, compare_task

    settings = configured_settings()
    compare_id = args.compare_id or uuid.uuid4().hex
    if not re.match(COMPARE_ID, compare_id):
        raise UsageError("--compare-id must be 4-48 letters, digits, '-' or '_', starting with a letter or digit")
    args.resume_hint = (f"comparison {compare_id} is saved; resume it with: "
                        f"python -m devhost compare --compare-id {compare_id} --state-dir {args.state_dir}")
    stderr = Console(stderr=True)

    def show(status: Any) -> None:
        if stderr.is_terminal and isinstance(status.custom_status, dict):
            states = ", ".join(f"{k} {v}" for k, v in status.custom_status.get("strategies", {}).items())
            stderr.print(f"[dim]{status.custom_status.get('phase')}: {states}[/dim]", end="\r")

    output = await run_to_end(
        args, console, orchestrator=COMPARE_ORCHESTRATOR, instance_id=compare_id, label=f"comparison {compare_id}",
        new_input=lambda: compare_task(_request(args), compare_id, settings, services.store()).model_dump(), on_status=show,
    )  # fmt: skip
    if output is None:
        return 1
    result = CompareResult.model_validate(output)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print_compare(console, result, compare_id)
    return 0


def _score(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def print_compare(console: Console, result: CompareResult, compare_id: str) -> None:
    table = Table(title=f"{result.question}", caption=f"comparison {compare_id}", show_lines=True)
    for column in ("strategy", "answer", "sources", "seconds", "calls", "tokens", "EM", "F1", "rel", "grnd", "coh"):
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
            *(_score(v) for v in (s.exact_match, s.f1, s.relevance, s.groundedness, s.coherence)),
        )
    console.print(table)
    if result.preference:
        console.print("Judge's preference: " + "; ".join(f"{p.a} vs {p.b}: {p.winner}" for p in result.preference))


def print_strategy_summaries(console: Console, summary: BatchSummary) -> None:
    if not summary.strategies:
        return
    table = Table(title="Per strategy")
    for column in (
        "strategy",
        "answered",
        "accuracy",
        "F1",
        "relevance",
        "groundedness",
        "coherence",
        "p50 s",
        "calls",
        "tokens",
    ):
        table.add_column(column)
    for name, s in summary.strategies.items():
        judge = s.judge
        table.add_row(
            name,
            f"{s.answered}/{s.count}",
            _score(s.accuracy),
            _score(s.f1),
            *(_score(getattr(judge, r)) if judge else "-" for r in ("relevance", "groundedness", "coherence")),
            _score(s.latency_seconds.p50) if s.latency_seconds else "-",
            str(s.usage.model_calls),
            str(s.usage.prompt_tokens + s.usage.completion_tokens),
        )
    console.print(table)
