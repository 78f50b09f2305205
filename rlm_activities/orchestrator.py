"""The RLM loop (shared.loop) as a Durable orchestration: every step is a checkpointed
activity and every sub-query a sub-orchestration, so a query survives restarts and
fans out across workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import azure.durable_functions as df

from shared.loop import RlmLoop, Steps
from shared.step_models import Progress, RlmTask

ORCHESTRATOR = "rlm_orchestrator"

MODEL_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)
SANDBOX_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
RETRIES = {"generate_step": MODEL_RETRY, "leaf_query": MODEL_RETRY}

bp = df.Blueprint()


class DurableRuntime:
    """The loop's runtime on Durable Functions: effects become Durable tasks."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.instance_id = context.instance_id

    def now(self) -> datetime:
        return self.context.current_utc_datetime

    def step(self, name: str, payload: dict[str, Any]) -> Any:
        return self.context.call_activity_with_retry(name, RETRIES.get(name, SANDBOX_RETRY), payload)

    def sub_query(self, task: RlmTask, instance_id: str) -> Any:
        return self.context.call_sub_orchestrator(ORCHESTRATOR, task.model_dump(), instance_id)

    def all(self, work: list[Any]) -> Any:
        return self.context.task_all(work)

    def timer(self, fire_at: datetime) -> Any:
        return self.context.create_timer(fire_at)

    def race(self, work: Any, timer: Any) -> Any:
        return self.context.task_any([work, timer])

    def fired(self, timer: Any) -> bool:
        return bool(timer.is_completed)

    def cancel(self, timer: Any) -> None:
        timer.cancel()

    def error_text(self, error: Exception) -> str:
        """The SDK raises a failed task as "{reason} \n {details}", details being the stack."""
        return str(error).split(" \n ", 1)[0]

    def report(self, progress: Progress) -> None:
        self.context.set_custom_status(progress.model_dump())


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def rlm_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    task = RlmTask.model_validate(context.get_input())
    return (yield from RlmLoop(DurableRuntime(context), task).run())
