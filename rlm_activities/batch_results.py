"""Scoring and summarising a batch: pure functions, so the rules are easy to read and test.
The scores themselves are shared.grading's, the same as a comparison's."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from rlm_activities.batch_models import BatchRow, BatchSummary, JudgeMeans, KindScores, Latency, StoredQuestion, StrategySummary
from shared.grading import RUBRICS, JudgeScores, PreferenceTally, Verdict, exact_match, token_f1
from shared.models import QueryResult, TokenUsage
from shared.retrieval.models import Strategy


def build_row(
    instance_id: str,
    strategy: Strategy,
    question: StoredQuestion,
    result: QueryResult | None,
    answer: str | None,
    error: str | None,
    judge: JudgeScores | None = None,
    preference: dict[Strategy, Verdict] | None = None,
) -> BatchRow:
    """A row from the query's stored result and the error its orchestration ended with, if
    any, with the judge's scores of it and its preferences against the other strategies."""
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
        strategy=strategy,
        kind=question.kind,
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
        judge=judge if not failed else None,
        preference=preference if preference and not failed else {},
        error=error if failed else None,
    )


def total_usage(usages: Iterable[TokenUsage]) -> TokenUsage:
    return sum(usages, TokenUsage())


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def latency(rows: list[BatchRow]) -> Latency | None:
    durations = sorted(r.duration_seconds for r in rows if r.duration_seconds is not None and r.error is None)
    if not durations:
        return None
    return Latency(
        mean=round(statistics.fmean(durations), 3),
        p50=percentile(durations, 0.5),
        p95=percentile(durations, 0.95),
        max=durations[-1],
    )


def judge_means(rows: list[BatchRow]) -> JudgeMeans | None:
    """Each rubric's mean over the answers the judge gave that score."""
    judged = [r.judge for r in rows if r.judge is not None]
    if not judged:
        return None
    return JudgeMeans(**{rubric: _mean([s for j in judged if (s := getattr(j, rubric)) is not None]) for rubric in RUBRICS})


def _accuracy(scored: list[BatchRow]) -> float | None:
    return round(sum(1 for r in scored if r.correct) / len(scored), 4) if scored else None


def kind_scores(rows: list[BatchRow]) -> dict[str, KindScores] | None:
    """Exact match and F1 by the questions' kind, when the questions name kinds."""
    kinds = sorted({r.kind for r in rows if r.kind is not None})
    if not kinds:
        return None
    split = {}
    for kind in kinds:
        scored = [r for r in rows if r.kind == kind and r.correct is not None]
        split[kind] = KindScores(
            count=sum(1 for r in rows if r.kind == kind), accuracy=_accuracy(scored), f1=_mean([r.f1 or 0.0 for r in scored])
        )
    return split


def preference_tally(rows: list[BatchRow]) -> PreferenceTally | None:
    """Wins, ties and losses of these rows' answers in the judge's pairwise preferences."""
    found = [verdict for r in rows for verdict in r.preference.values()]
    return PreferenceTally.of(found) if found else None


def strategy_summary(rows: list[BatchRow]) -> StrategySummary:
    failed = sum(1 for r in rows if r.error is not None)
    scored = [r for r in rows if r.correct is not None]
    usage = total_usage(r.usage for r in rows)
    return StrategySummary(
        count=len(rows),
        answered=len(rows) - failed,
        failed=failed,
        accuracy=_accuracy(scored),
        f1=_mean([r.f1 or 0.0 for r in scored]),
        judge=judge_means(rows),
        preference=preference_tally(rows),
        kinds=kind_scores(rows),
        latency_seconds=latency(rows),
        cost=usage.cost,
        usage=usage,
    )


def summarize(
    batch_id: str,
    rows: list[BatchRow],
    started_at: str,
    ended_at: str,
    results: str,
    summary: str,
    strategies: list[Strategy] | None = None,
    judge_usage: TokenUsage | None = None,
    index_usage: TokenUsage | None = None,
) -> BatchSummary:
    """The whole batch, and each strategy apart when the batch ran more than RLM; the judge's
    calls and the index build apart from the queries'."""
    overall = strategy_summary(rows)
    scored = [r for r in rows if r.correct is not None]
    per_strategy = None
    if strategies and strategies != ["rlm"]:
        per_strategy = {s: strategy_summary([r for r in rows if r.strategy == s]) for s in strategies}
    return BatchSummary(
        batch_id=batch_id,
        count=len(rows),
        answered=overall.answered,
        failed=overall.failed,
        with_expected=len(scored),
        correct=sum(1 for r in scored if r.correct),
        accuracy=overall.accuracy,
        f1=overall.f1,
        kinds=overall.kinds,
        usage=overall.usage,
        cost=overall.usage.cost,
        judge_usage=judge_usage or TokenUsage(),
        index_usage=index_usage or TokenUsage(),
        total_tokens=overall.usage.prompt_tokens + overall.usage.completion_tokens,
        latency_seconds=overall.latency_seconds,
        started_at=started_at,
        ended_at=ended_at,
        results=results,
        summary=summary,
        strategies=per_strategy,
    )
