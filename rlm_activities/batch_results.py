"""Scoring and summarising a batch: pure functions, so the rules are easy to read and test."""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from collections.abc import Iterable

from rlm_activities.batch_models import BatchRow, BatchSummary, Latency, StoredQuestion, query_instance_id
from shared.models import QueryResult, TokenUsage

NON_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Case, Unicode compatibility forms, punctuation and spacing do not make an answer wrong."""
    return NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def is_correct(answer: str, expected: str) -> bool:
    """Normalized exact match, or the expected answer appearing as whole words in the answer."""
    got, want = normalize(answer), normalize(expected)
    if not want:
        return got == want
    return got == want or f" {want} " in f" {got} "


def build_row(batch_id: str, index: int, question: StoredQuestion, result: QueryResult | None, answer: str | None, error: str | None) -> BatchRow:
    """A row from the query's stored result and the error its orchestration ended with, if any."""
    instance_id = query_instance_id(batch_id, index)
    failed = result is None or result.failed or error is not None
    if failed:
        error = (result.error if result else None) or error or "the query ended without a result"
    correct = None if question.expected is None else (not failed and answer is not None and is_correct(answer, question.expected))
    return BatchRow(
        id=question.id,
        question=question.question,
        answer=None if failed else answer,
        expected=question.expected,
        correct=correct,
        forced=bool(result and result.forced),
        iterations=result.iterations if result else None,
        usage=total_usage(result.usage.values()) if result else TokenUsage(),
        sources=[s.title for s in result.sources] if result else [],
        duration_seconds=result.duration_seconds if result else None,
        instance_id=instance_id,
        error=error if failed else None,
    )


def total_usage(usages: Iterable[TokenUsage]) -> TokenUsage:
    return sum(usages, TokenUsage())


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(batch_id: str, rows: list[BatchRow], started_at: str, ended_at: str, results: str, summary: str) -> BatchSummary:
    failed = sum(1 for r in rows if r.error is not None)
    scored = [r for r in rows if r.correct is not None]
    correct = sum(1 for r in scored if r.correct)
    durations = sorted(r.duration_seconds for r in rows if r.duration_seconds is not None and r.error is None)
    usage = total_usage(r.usage for r in rows)
    latency = None
    if durations:
        latency = Latency(
            mean=round(statistics.fmean(durations), 3),
            p50=percentile(durations, 0.5),
            p95=percentile(durations, 0.95),
            max=durations[-1],
        )
    return BatchSummary(
        batch_id=batch_id,
        count=len(rows),
        answered=len(rows) - failed,
        failed=failed,
        with_expected=len(scored),
        correct=correct,
        accuracy=round(correct / len(scored), 4) if scored else None,
        usage=usage,
        cost=usage.cost,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
        latency_seconds=latency,
        started_at=started_at,
        ended_at=ended_at,
        results=results,
        summary=summary,
    )
