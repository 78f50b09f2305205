"""The bounds of every loop setting, written once.

Configuration (shared.config) and the task a loop runs (shared.step_models.RlmTask) share
the service's limits: a task is built from configuration, and a raw orchestration start
(Durable's webhook, open to whoever holds the system key) hands the orchestrator a task
directly, so the task must refuse what configuration would. A single request
(shared.models.QueryOptions) may ask for a tighter part of that.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# What configuration may set, and so any task may carry.
Iterations = Annotated[int, Field(ge=1, le=200)]
Depth = Annotated[int, Field(ge=0, le=10)]
TruncateChars = Annotated[int, Field(ge=100, le=200_000)]
Parallel = Annotated[int, Field(ge=1, le=256)]
ModelName = Annotated[str, Field(min_length=1, max_length=200)]
# Budgets of a tree: configured ones start at a useful size; a sub-query's share may reach 0.
MAX_TOKENS, MAX_COST, MAX_DEADLINE_SECONDS = 100_000_000, 10_000.0, 86_400.0
TokenBudget = Annotated[int, Field(ge=1000, le=MAX_TOKENS)]
CostBudget = Annotated[float, Field(gt=0, le=MAX_COST)]
DeadlineSeconds = Annotated[float, Field(ge=1, le=MAX_DEADLINE_SECONDS)]
TokenShare = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
CostShare = Annotated[float, Field(ge=0, le=MAX_COST)]

# What one request may ask for.
RequestIterations = Annotated[int, Field(ge=1, le=50)]
RequestSubIterations = Annotated[int, Field(ge=1, le=30)]
RequestDepth = Annotated[int, Field(ge=0, le=4)]
RequestTruncateChars = Annotated[int, Field(ge=200, le=20_000)]
