"""Budgets of a whole recursion tree: tokens, cost and a wall-clock deadline.

A query's budget is handed down the tree: each sub-query gets a share of what its parent
has left, and enforces it itself, so no shared counter is needed across workers. A loop
starts another iteration only while what is left would pay for two calls the size of its
last one (that iteration's and a forced answer's), so the forced answer fits and the tree
overshoots only by what calls already in flight use beyond that estimate.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, PlainSerializer

from shared.bounds import CostShare, DeadlineSeconds, TokenShare
from shared.models import ForcedReason, TokenUsage

# Sub-queries run in parallel, so each gets this part of the parent's remaining time and
# the parent keeps the rest to read their answers and write its own.
CHILD_TIME_SHARE = 0.75

Instant = Annotated[AwareDatetime, PlainSerializer(lambda moment: moment.isoformat(), return_type=str)]


class Budget(BaseModel):
    """What a (sub-)query may spend, None meaning no limit. A root carries `deadline_seconds`
    until its loop starts and fixes `deadline`; sub-queries get an absolute deadline."""

    tokens: TokenShare | None = None
    cost: CostShare | None = None
    deadline_seconds: DeadlineSeconds | None = None
    deadline: Instant | None = None

    def started(self, now: datetime) -> Budget:
        """This budget with its deadline fixed, counted from when the loop starts (a batch
        question waiting for its turn does not lose time)."""
        if self.deadline is not None or self.deadline_seconds is None:
            return self
        return self.model_copy(update={"deadline": now + timedelta(seconds=self.deadline_seconds)})

    def spent(self, used: TokenUsage, last_call: TokenUsage, deadline_passed: bool) -> ForcedReason | None:
        """Why no further iteration fits, if none does: `used` is the tree's usage so far,
        `last_call` the loop's latest model call, the estimate of its next."""
        if deadline_passed:
            return "deadline"
        if self.tokens is not None and used.total_tokens + 2 * last_call.total_tokens >= self.tokens:
            return "tokens"
        if self.cost is not None and (used.cost or 0.0) + 2 * (last_call.cost or 0.0) >= self.cost:
            return "cost"
        return None

    def share(self, used: TokenUsage, parts: int, now: datetime) -> Budget:
        """A sub-query's budget: an equal part of what is left, split `parts` ways (the
        sub-queries still to run and the parent), and an earlier deadline."""
        tokens = None if self.tokens is None else max(self.tokens - used.total_tokens, 0) // parts
        cost = None if self.cost is None else max(self.cost - (used.cost or 0.0), 0.0) / parts
        deadline = None
        if self.deadline is not None:
            deadline = now + max(self.deadline - now, timedelta(0)) * CHILD_TIME_SHARE
        return Budget(tokens=tokens, cost=cost, deadline=deadline)
