"""The LLM judge's activities (shared.judge), used by comparisons and batches."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from rlm_activities import services
from shared import judge

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload")
async def judge_answer(payload: dict[str, Any]) -> dict[str, Any]:
    return await judge.judge_answer(payload, services.parts())


@bp.activity_trigger(input_name="payload")
async def judge_pair(payload: dict[str, Any]) -> dict[str, Any]:
    return await judge.judge_pair(payload, services.parts())
