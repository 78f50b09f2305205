"""The retrieval baselines (shared.retrieval) as Durable orchestrations: one
`retrieval_orchestrator` instance per (question, strategy), its steps checkpointed activities."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from rlm_activities.orchestrator import MODEL_RETRY, SANDBOX_RETRY, DurableRuntime
from rlm_activities.services import retrieval
from shared.loop import Steps
from shared.retrieval import steps
from shared.retrieval.loop import RetrievalLoop
from shared.retrieval.models import StrategyTask

STRATEGY_ORCHESTRATOR = "retrieval_orchestrator"
# Index builds and searches call the embeddings endpoint too: retry them as model calls.
RETRIES = {name: MODEL_RETRY for name in ("retrieval_index", "retrieval_search", "retrieval_rewrite", "retrieval_answer")}

bp = df.Blueprint()


class StrategyRuntime(DurableRuntime):
    """A baseline's runtime on Durable Functions: its steps are activities with retries."""

    def step(self, name: str, payload: dict[str, Any]) -> Any:
        return self.context.call_activity_with_retry(name, RETRIES.get(name, SANDBOX_RETRY), payload)


@bp.orchestration_trigger(context_name="context", orchestration=STRATEGY_ORCHESTRATOR)
def retrieval_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    task = StrategyTask.model_validate(context.get_input())
    return (yield from RetrievalLoop(StrategyRuntime(context), task).run())


@bp.activity_trigger(input_name="payload")
async def retrieval_index(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.index_step(payload, retrieval())


@bp.activity_trigger(input_name="payload")
async def retrieval_search(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.search_step(payload, retrieval())


@bp.activity_trigger(input_name="payload")
async def retrieval_rewrite(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.rewrite_step(payload, retrieval())


@bp.activity_trigger(input_name="payload")
async def retrieval_answer(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.answer_step(payload, retrieval())


@bp.activity_trigger(input_name="payload")
def retrieval_finish(payload: dict[str, Any]) -> dict[str, Any]:
    return steps.finish_step(payload, retrieval())


@bp.activity_trigger(input_name="payload")
async def prepare_indexes(payload: dict[str, Any]) -> dict[str, Any]:
    return await steps.prepare_indexes(payload, retrieval())
