"""Scoring and summarising a batch: pure functions, so the rules are easy to read and test."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from rlm_activities.batch_models import BatchRow, BatchSummary, Latency, StoredQuestion, query_instance_id
from shared.grading import exact_match, token_f1
from shared.models import QueryResult, TokenUsage


def build_row(
    batch_id: str, index: int, question: StoredQuestion, result: QueryResult | None, answer: str | None, error: str | None
) -> BatchRow:
    """A row from the query's stored result and the error its orchestration ended with, if any."""
    instance_id = query_instance_id(batch_id, index)
    failed = result is None or result.failed or error is not None
    if failed:
        error = (result.error if result else None) or error or "the query ended without a result"
    correct = f1 = None
    if question.expected is not None:
        scored = answer if not failed and answer is not None else ""
        correct = bool(scored) and exact_match(scored, question.expected)
        f1 = token_f1(scored, question.expected) if scored else 0.0
    return BatchRow(
        id=question.id,
        question=question.question,
        answer=None if failed else answer,
        expected=question.expected,
        correct=correct,
        f1=f1,
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
        f1=round(statistics.fmean(r.f1 or 0.0 for r in scored), 4) if scored else None,
        usage=usage,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
        latency_seconds=latency,
        started_at=started_at,
        ended_at=ended_at,
        results=results,
        summary=summary,
    )
