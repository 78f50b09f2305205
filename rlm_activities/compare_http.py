"""HTTP for comparisons: start one (RLM and baselines on one question), then read its
progress and, when done, the side-by-side result. A comparison holds one running-query
slot, as a query does, and its strategies run inside it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, Field

from rlm_activities import services
from rlm_activities.api_models import STATUS_DOC, DurableLinks, RuntimeStatus
from rlm_activities.http_api import RETRY_AFTER_SECONDS
from rlm_activities.http_io import ApiError, NotFound, instance_summary, json_response, parse_body, path_id
from rlm_activities.starts import admit
from shared.admission import Slots
from shared.compare import COMPARE_ID, COMPARE_ORCHESTRATOR, CompareRequest, CompareResult, compare_task
from shared.corpus import CorpusError

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


@bp.route(route="compare", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_compare(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a comparison: 202 with its status link and the Durable management links."""
    try:
        return await _start_compare(req, client)
    except ApiError as exc:
        return exc.response()


async def _start_compare(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    request = parse_body(req, CompareRequest, "compare request")
    compare_id = uuid.uuid4().hex
    try:
        task = await asyncio.to_thread(compare_task, request, compare_id, services.settings(), services.store())
    except CorpusError as exc:
        raise NotFound(str(exc)) from None
    slots = Slots(services.store(), services.settings().max_running_queries)
    ticket = await admit(client, slots, compare_id)
    if ticket is None:
        raise ApiError(
            f"{slots.limit} queries are running, as many as this service runs at once; retry in a few seconds",
            {"limit": slots.limit, "retry_after_seconds": RETRY_AFTER_SECONDS},
            status=429,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    try:
        await client.start_new(COMPARE_ORCHESTRATOR, compare_id, task.model_dump())
    except BaseException:
        await asyncio.to_thread(slots.release, ticket)
        raise
    url = urlsplit(req.url)
    status_url = f"{url.scheme}://{url.netloc}/api/compare/{compare_id}"
    body = CompareStarted(
        compare_id=compare_id, status_url=status_url, management=client.get_client_response_links(req, compare_id)
    )
    return json_response(body, 202, {"Location": status_url})


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
