"""HTTP for batches: submit one (the queue message's body), list them, read one's status and
summary, download its JSONL rows. Bad input gets a 4xx with a JSON body, never a 500."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from rlm_activities import services
from rlm_activities.api_models import BatchLinks, BatchList, BatchListItem, BatchStarted, BatchStatus
from rlm_activities.batch import submit_batch
from rlm_activities.batch_models import BATCH_ID, BATCH_ORCHESTRATOR, BatchRequest, batch_instance_id, results_key, summary_key
from rlm_activities.http_io import (
    ApiError,
    error_response,
    idempotency_key,
    instance_summary,
    json_response,
    listed,
    parse_body,
    path_id,
    unpriced_error,
)
from rlm_activities.starts import key_id
from shared.catalog import Catalog, Outcome
from shared.corpus import CorpusError
from shared.starting import UnpricedModels
from shared.storage.base import BlobNotFound

bp = df.Blueprint()


def _links(req: func.HttpRequest, batch_id: str) -> BatchLinks:
    url = urlsplit(req.url)
    base = f"{url.scheme}://{url.netloc}/api/batches/{batch_id}"
    container = services.store().containers.results
    return BatchLinks(
        status_url=base,
        results_url=f"{base}/results",
        results_blob=f"{container}/{results_key(batch_id)}",
        summary_blob=f"{container}/{summary_key(batch_id)}",
    )


@bp.route(route="batches", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_batch(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a batch: 202 with its status link and the Durable management links; the same
    body again gets 200 with the same links, another body under its batch_id a 409.

    Without a batch_id, an Idempotency-Key names the batch; without either, it gets a new id.
    """
    try:
        request = parse_body(req, BatchRequest, "batch request")
        key = idempotency_key(req)
    except ApiError as exc:
        return exc.response()
    batch_id = request.batch_id or (key_id(key) if key else uuid.uuid4().hex)
    try:
        outcome = await submit_batch(client, request, batch_id)
    except CorpusError as exc:
        return error_response(404, str(exc))
    except UnpricedModels as exc:
        return unpriced_error(exc).response()
    links = _links(req, batch_id)
    if outcome is Outcome.CONFLICT:
        message = f"batch {batch_id} was started with another body; use a new batch_id to run this one"
        return error_response(409, message, links.model_dump())
    management = client.get_client_response_links(req, batch_instance_id(batch_id))
    body = BatchStarted(batch_id=batch_id, management=management, **links.model_dump())
    return json_response(body, 202 if outcome is Outcome.NEW else 200, {"Location": links.status_url})


@bp.route(route="batches", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_batches(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The newest batches, newest first, with their progress or summary."""
    try:
        entries = await listed(req, "batches")
    except ApiError as exc:
        return exc.response()
    summaries = await asyncio.gather(
        *(instance_summary(client, batch_instance_id(e.id), "summary", BATCH_ORCHESTRATOR) for e in entries)
    )
    batches = [
        BatchListItem.model_validate(
            {"batch_id": e.id, "status": "Pending", "questions": e.fields.get("questions", 0), "created": e.created}
            | (summary or {})
        )
        for e, summary in zip(entries, summaries, strict=True)
    ]
    return json_response(BatchList(batches=batches))


@bp.route(route="batches/{batch_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_batch(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Progress (done/total) while running; the summary and where the rows are when done."""
    try:
        batch_id = path_id(req, "batch_id", BATCH_ID, "batch id")
    except ApiError as exc:
        return exc.response()
    summary = await instance_summary(client, batch_instance_id(batch_id), "summary", BATCH_ORCHESTRATOR)
    if summary is None:
        if await asyncio.to_thread(Catalog(services.store()).get, "batches", batch_id) is None:
            return error_response(404, f"no batch with id {batch_id}")
        summary = {"status": "Pending"}  # claimed, its orchestration about to be created
    return json_response(BatchStatus.model_validate({"batch_id": batch_id} | summary | _links(req, batch_id).model_dump()))


@bp.route(route="batches/{batch_id}/results", methods=["GET"])
async def get_batch_results(req: func.HttpRequest) -> func.HttpResponse:
    """The JSONL rows, one per question, once the batch has written them."""
    try:
        batch_id = path_id(req, "batch_id", BATCH_ID, "batch id")
    except ApiError as exc:
        return exc.response()
    store = services.store()
    try:
        rows = await asyncio.to_thread(store.get_bytes, store.containers.results, results_key(batch_id))
    except BlobNotFound:
        return error_response(404, f"no results for batch {batch_id} (yet)")
    return func.HttpResponse(rows, mimetype="application/x-ndjson")
