"""HTTP for comparisons: start one (RLM and baselines on one question), list them, read its
progress and, when done, the side-by-side result, or cancel it. A comparison holds one
running-query slot, as a query does, and its strategies run inside it; an Idempotency-Key
starts it once, as for a query."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, Field

from rlm_activities import services
from rlm_activities.api_models import STATUS_DOC, DurableLinks, RuntimeStatus
from rlm_activities.cancel import cancel_link, cancel_reason, cancel_tree
from rlm_activities.http_io import (
    ApiError,
    NotFound,
    error_response,
    idempotency_key,
    instance_summary,
    json_response,
    listed,
    listed_state,
    parse_body,
    path_id,
)
from rlm_activities.starts import ENDED, key_id, start_admitted
from shared.catalog import Outcome, body_digest, listing_text
from shared.compare import (
    COMPARE_ID,
    COMPARE_ORCHESTRATOR,
    CompareRequest,
    CompareResult,
    compare_task,
    strategy_instance_id,
)
from shared.retrieval.models import STRATEGIES, Strategy
from shared.telemetry.context import start_trace

bp = df.Blueprint()


class CompareStarted(BaseModel):
    compare_id: str
    status_url: str
    management: DurableLinks


class CompareStatus(BaseModel):
    compare_id: str
    status: RuntimeStatus = Field(description=STATUS_DOC)
    progress: dict[str, Any] | None = Field(None, description="the phase and each strategy's state")
    result: CompareResult | None = Field(None, description="once Completed")
    error: Any = Field(None, description="once Failed or Terminated")


class CompareSummary(BaseModel):
    compare_id: str
    status: RuntimeStatus = Field(description=STATUS_DOC)
    question: str = Field(description="the question, cut to a few hundred characters")
    strategies: list[Strategy]
    created: datetime


class CompareList(BaseModel):
    comparisons: list[CompareSummary]


class CompareCancelAccepted(BaseModel):
    compare_id: str
    status: str = "Terminating"
    strategies: list[Strategy] = Field(description="the strategies that were still running, now stopped")
    sub_queries: int = Field(description="their sub-queries, stopped too")


@bp.route(route="compare", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_compare(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a comparison: 202 with its status link and the Durable management links; with an
    Idempotency-Key, once per key (the same body again gets 200 and the same links)."""
    try:
        return await _start_compare(req, client)
    except ApiError as exc:
        return exc.response()


async def _start_compare(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    request = parse_body(req, CompareRequest, "compare request")
    key = idempotency_key(req)
    compare_id = key_id(key) if key else uuid.uuid4().hex
    trace = start_trace(req.headers)  # the caller's trace, when it sent a traceparent

    fields = {"question": listing_text(request.question), "strategies": request.strategies}
    outcome = await start_admitted(
        client, "comparisons", compare_id, keyed=key is not None, digest=body_digest(request), fields=fields,
        orchestrator=COMPARE_ORCHESTRATOR,
        build=lambda: compare_task(request, compare_id, services.settings(), services.store(), trace),
    )  # fmt: skip
    status_url = _status_url(req, compare_id)
    if outcome is Outcome.CONFLICT:
        message = "this Idempotency-Key started a comparison with another body; use a new key for a new comparison"
        return error_response(409, message, {"compare_id": compare_id, "status_url": status_url})
    management = cancel_link(req, client.get_client_response_links(req, compare_id), f"compare/{compare_id}/cancel")
    body = CompareStarted(compare_id=compare_id, status_url=status_url, management=management)
    return json_response(body, 202 if outcome is Outcome.NEW else 200, {"Location": status_url})


def _status_url(req: func.HttpRequest, compare_id: str) -> str:
    url = urlsplit(req.url)
    return f"{url.scheme}://{url.netloc}/api/compare/{compare_id}"


@bp.route(route="compare", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_compare(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The newest comparisons (started over HTTP or by the CLI), newest first, with their status."""
    try:
        entries = await listed(req, "comparisons")
    except ApiError as exc:
        return exc.response()
    statuses = await asyncio.gather(*(client.get_status(e.id) for e in entries))
    comparisons = [
        CompareSummary(
            compare_id=e.id,
            status=listed_state(s),
            question=e.fields.get("question", ""),
            strategies=e.fields.get("strategies", []),
            created=e.created,
        )
        for e, s in zip(entries, statuses, strict=True)
    ]
    return json_response(CompareList(comparisons=comparisons))


@bp.route(route="compare/{compare_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_compare(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Each strategy's state while running; the side-by-side result when done."""
    try:
        compare_id = path_id(req, "compare_id", COMPARE_ID, "comparison id")
        summary = await instance_summary(client, compare_id, "result", COMPARE_ORCHESTRATOR)
        if summary is None:
            raise NotFound(f"no comparison with id {compare_id}")
    except ApiError as exc:
        return exc.response()
    return json_response(CompareStatus.model_validate({"compare_id": compare_id} | summary))


@bp.route(route="compare/{compare_id}/cancel", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def cancel_compare(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Stop a running comparison: the parent, each strategy still running with its sub-queries,
    and their sandboxes, as cancelling a query does."""
    try:
        compare_id = path_id(req, "compare_id", COMPARE_ID, "comparison id")
        reason = cancel_reason(req)
    except ApiError as exc:
        return exc.response()
    status = await client.get_status(compare_id)
    if status is None or status.runtime_status is None or status.name != COMPARE_ORCHESTRATOR:
        return error_response(404, f"no comparison with id {compare_id}")
    if status.runtime_status.value not in ("Running", "Pending"):
        return error_response(409, f"comparison {compare_id} is {status.runtime_status.value}, not running")
    await client.terminate(compare_id, reason)
    # The parent is stopped first, so no strategy starts after this look at them.
    children = {s: strategy_instance_id(compare_id, s) for s in STRATEGIES}
    states = await asyncio.gather(*(client.get_status(iid) for iid in children.values()))
    running = [s for s, state in zip(children, states, strict=True) if _running(state)]
    reason = f"comparison {compare_id} was cancelled"
    sub_queries = await asyncio.gather(*(cancel_tree(client, children[s], reason) for s in running))
    return json_response(CompareCancelAccepted(compare_id=compare_id, strategies=running, sub_queries=sum(sub_queries)), 202)


def _running(status: df.DurableOrchestrationStatus | None) -> bool:
    return status is not None and status.runtime_status is not None and status.runtime_status.value not in ENDED
