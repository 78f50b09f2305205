"""Reciprocal rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009): rankings from
different retrievers merged by rank alone, so BM25 scores and cosines need no common scale."""

from __future__ import annotations

# The constant from the paper: it damps the weight of the very first ranks.
RRF_K = 60


def reciprocal_rank_fusion(rankings: list[list[int]], limit: int, k: int = RRF_K) -> list[tuple[int, float]]:
    """Items of every ranking scored by the sum of 1 / (k + rank); best first, ties by first appearance."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    order = {item: n for n, item in enumerate(dict.fromkeys(i for r in rankings for i in r))}
    ranked = sorted(scores.items(), key=lambda pair: (-pair[1], order[pair[0]]))
    return [(item, round(score, 6)) for item, score in ranked[:limit]]
