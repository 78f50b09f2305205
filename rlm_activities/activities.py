"""The loop's steps (shared.steps) as Durable activities. `async def` steps run on the
worker's event loop, where the process-wide Copilot client lives and where sandbox steps
wait for a slot without holding a thread; the others run in the worker's thread pool."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from rlm_activities.services import parts
from shared import steps

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload")
async def open_session(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.open_session(payload, parts())


@bp.activity_trigger(input_name="payload")
async def generate_step(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.generate_step(payload, parts())


@bp.activity_trigger(input_name="payload")
async def execute_cell(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.execute_cell(payload, parts())


@bp.activity_trigger(input_name="payload")
async def resume_cell(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.resume_cell(payload, parts())


@bp.activity_trigger(input_name="payload")
async def leaf_query(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.leaf_query(payload, parts())


@bp.activity_trigger(input_name="payload")
def finish_query(payload: dict[str, Any]) -> dict[str, Any]:
    return steps.finish_query(payload, parts())
