"""The loop's steps (shared.steps) as Durable activities. `async def` steps run on the
worker's event loop, where the process-wide Copilot client lives and where sandbox steps
wait for a slot without holding a thread; finishing, which only reads and writes storage,
runs in a thread.

Each step is also a client function: while it runs and after it ran, it asks whether its
tree still runs (rlm_activities.cancel), so a root terminated by Durable's own webhook
still stops its sub-queries and frees the tree's sandboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import azure.durable_functions as df
from pydantic import BaseModel

from rlm_activities.cancel import TreeStopped, stop_if_ended
from rlm_activities.services import parts
from shared import steps
from shared.step_models import RlmTask

bp = df.Blueprint()

Step = Callable[[dict[str, Any], steps.Parts], Awaitable[dict[str, Any]]]


class StepPlace(BaseModel):
    """What every step's input says about where in which tree it runs."""

    task: RlmTask
    instance_id: str


async def _in_running_tree(step: Step, payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """Run `step` while asking, beside it, whether its tree still runs (so that check costs the
    step no time): a step of a stopped tree is cancelled and the tree stopped. Once the step ran,
    the question is asked again, while its instance still runs, so a root stopped during its
    step still frees the tree's sandboxes."""
    where = StepPlace.model_validate(payload)
    running = asyncio.ensure_future(step(payload, parts()))
    if (reason := await stop_if_ended(client, where.task, where.instance_id)) is not None:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        raise TreeStopped(f"{where.instance_id} did not run its step: {reason}")
    result = await running
    await stop_if_ended(client, where.task, where.instance_id)
    return result


async def _finish(payload: dict[str, Any], p: steps.Parts) -> dict[str, Any]:
    return await asyncio.to_thread(steps.finish_query, payload, p)


@bp.activity_trigger(input_name="payload")
@bp.durable_client_input(client_name="client")
async def open_session(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    return await _in_running_tree(steps.open_session, payload, client)


@bp.activity_trigger(input_name="payload")
@bp.durable_client_input(client_name="client")
async def generate_step(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    return await _in_running_tree(steps.generate_step, payload, client)


@bp.activity_trigger(input_name="payload")
@bp.durable_client_input(client_name="client")
async def execute_cell(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    return await _in_running_tree(steps.execute_cell, payload, client)


@bp.activity_trigger(input_name="payload")
@bp.durable_client_input(client_name="client")
async def resume_cell(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    return await _in_running_tree(steps.resume_cell, payload, client)


@bp.activity_trigger(input_name="payload")
@bp.durable_client_input(client_name="client")
async def leaf_query(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    return await _in_running_tree(steps.leaf_query, payload, client)


@bp.activity_trigger(input_name="payload")
@bp.durable_client_input(client_name="client")
async def finish_query(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    return await _in_running_tree(_finish, payload, client)
