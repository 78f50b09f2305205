"""HTTP for batches: submit one (the queue message's body), read its status and summary,
download its JSONL rows. Bad input gets a 4xx with a JSON body, never a 500."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from rlm_activities import services
from rlm_activities.batch import submit_batch
from rlm_activities.batch_models import BatchRequest, batch_instance_id, results_key, summary_key
from rlm_activities.http_io import BadRequest, error_response, instance_summary, json_response, parse_body
from shared.corpus import CorpusError
from shared.storage.base import BlobNotFound

bp = df.Blueprint()


def _links(req: func.HttpRequest, batch_id: str) -> dict[str, str]:
    url = urlsplit(req.url)
    base = f"{url.scheme}://{url.netloc}/api/batches/{batch_id}"
    container = services.store().containers.results
    return {
        "status_url": base,
        "results_url": f"{base}/results",
        "results_blob": f"{container}/{results_key(batch_id)}",
        "summary_blob": f"{container}/{summary_key(batch_id)}",
    }


@bp.route(route="batches", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_batch(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a batch: 202 with its status link and the Durable management links."""
    try:
        request = parse_body(req, BatchRequest, "batch request")
    except BadRequest as exc:
        return exc.response()
    batch_id = request.batch_id or uuid.uuid4().hex
    try:
        started = await submit_batch(client, request, batch_id)
    except CorpusError as exc:
        return error_response(404, str(exc))
    links = _links(req, batch_id)
    if not started:
        return error_response(409, f"batch {batch_id} already exists; use a new batch_id to run it again", links)
    management = client.get_client_response_links(req, batch_instance_id(batch_id))
    body = {"batch_id": batch_id, **links, "management": management}
    return func.HttpResponse(
        json.dumps(body), status_code=202, mimetype="application/json", headers={"Location": links["status_url"]}
    )


@bp.route(route="batches/{batch_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_batch(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Progress (done/total) while running; the summary and where the rows are when done."""
    batch_id = req.route_params.get("batch_id", "")
    summary = await instance_summary(client, batch_instance_id(batch_id), "summary")
    if summary is None:
        return error_response(404, f"no batch with id {batch_id}")
    return json_response({"batch_id": batch_id} | summary | _links(req, batch_id))


@bp.route(route="batches/{batch_id}/results", methods=["GET"])
async def get_batch_results(req: func.HttpRequest) -> func.HttpResponse:
    """The JSONL rows, one per question, once the batch has written them."""
    batch_id = req.route_params.get("batch_id", "")
    store = services.store()
    try:
        rows = await asyncio.to_thread(store.get_bytes, store.containers.results, results_key(batch_id))
    except (BlobNotFound, ValueError):
        return error_response(404, f"no results for batch {batch_id} (yet)")
    return func.HttpResponse(rows, mimetype="application/x-ndjson")
