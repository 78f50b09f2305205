"""HTTP for comparisons: start one (RLM and baselines on one question), then read its
progress and, when done, the side-by-side result."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from rlm_activities import services
from rlm_activities.http_io import BadRequest, error_response, instance_summary, json_response, parse_body
from shared.compare import COMPARE_ORCHESTRATOR, CompareRequest, compare_task
from shared.corpus import CorpusError

bp = df.Blueprint()


@bp.route(route="compare", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_compare(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a comparison: 202 with its status link and the Durable management links."""
    try:
        request = parse_body(req, CompareRequest, "compare request")
    except BadRequest as exc:
        return exc.response()
    compare_id = uuid.uuid4().hex
    try:
        task = await asyncio.to_thread(compare_task, request, compare_id, services.settings(), services.store())
    except CorpusError as exc:
        return error_response(404, str(exc))
    await client.start_new(COMPARE_ORCHESTRATOR, compare_id, task.model_dump())
    url = urlsplit(req.url)
    status_url = f"{url.scheme}://{url.netloc}/api/compare/{compare_id}"
    body = {"compare_id": compare_id, "status_url": status_url, "management": client.get_client_response_links(req, compare_id)}
    return func.HttpResponse(json.dumps(body), status_code=202, mimetype="application/json", headers={"Location": status_url})


@bp.route(route="compare/{compare_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_compare(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Each strategy's state while running; the side-by-side result when done."""
    compare_id = req.route_params.get("compare_id", "")
    status = await client.get_status(compare_id)
    if status is None or status.runtime_status is None or status.name != COMPARE_ORCHESTRATOR:
        return error_response(404, f"no comparison with id {compare_id}")
    summary = await instance_summary(client, compare_id, "result")
    return json_response({"compare_id": compare_id} | (summary or {}))
