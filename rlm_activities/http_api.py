"""HTTP triggers users touch: start a query, read its status, result and trace, cancel
it, upload a corpus. Bad input gets a 4xx with a JSON body saying what is wrong."""

from __future__ import annotations

import asyncio
import uuid

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, Field

from rlm_activities import services
from rlm_activities.http_io import BadRequest, error_response, instance_summary, json_response, parse_body
from rlm_activities.orchestrator import ORCHESTRATOR
from rlm_activities.web_ui import trace_page
from shared.corpus import CorpusError, load_index, render_documents, save_corpus
from shared.models import Document, QueryRequest
from shared.starting import root_task
from shared.trace import trace_tree

bp = df.Blueprint()


class CorpusUpload(BaseModel):
    """A corpus to store once and query many times by id."""

    documents: list[Document] | None = Field(None, min_length=1)
    text: str | None = Field(None, min_length=1)


@bp.route(route="queries", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_query(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a query: 202 with the Durable status-query links."""
    try:
        request = parse_body(req, QueryRequest, "query request")
    except BadRequest as exc:
        return exc.response()
    instance_id = uuid.uuid4().hex
    try:
        task = await asyncio.to_thread(root_task, request, instance_id, services.settings(), services.store())
    except CorpusError as exc:
        return error_response(404, str(exc))
    await client.start_new(ORCHESTRATOR, instance_id, task.model_dump())
    return client.create_check_status_response(req, instance_id)


@bp.route(route="queries/{instance_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_query(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Progress while running; the result (or the error) when done."""
    instance_id = req.route_params.get("instance_id", "")
    summary = await instance_summary(client, instance_id, "result")
    if summary is None:
        return error_response(404, f"no query with id {instance_id}")
    return json_response({"instance_id": instance_id} | summary)


@bp.route(route="queries/{instance_id}/trace", methods=["GET"])
async def get_trace(req: func.HttpRequest) -> func.HttpResponse:
    """The recursion tree with every step as JSON; `?format=html` is the web UI's trace view."""
    instance_id = req.route_params.get("instance_id", "")
    if req.params.get("format") == "html":
        return func.HttpResponse(status_code=302, headers={"Location": trace_page(instance_id)})
    tree = await asyncio.to_thread(trace_tree, services.traces(), instance_id)
    if tree is None:
        return error_response(404, f"no trace for query {instance_id}")
    return func.HttpResponse(tree.model_dump_json(), mimetype="application/json")


@bp.route(route="queries/{instance_id}/cancel", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def cancel_query(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params.get("instance_id", "")
    status = await client.get_status(instance_id)
    if status is None or status.runtime_status is None:
        return error_response(404, f"no query with id {instance_id}")
    if status.runtime_status.value not in ("Running", "Pending"):
        return error_response(409, f"query {instance_id} is {status.runtime_status.value}, not running")
    await client.terminate(instance_id, "cancelled by the user")
    # Durable does not cascade a termination: stop the sub-queries too, or they go on
    # calling the model for an answer nobody will read.
    metas = await asyncio.to_thread(services.traces().metas, instance_id)
    children = [m.instance_id for m in metas if m.instance_id != instance_id]
    await asyncio.gather(*(client.terminate(child, f"query {instance_id} was cancelled") for child in children))
    return json_response({"instance_id": instance_id, "status": "Terminating", "sub_queries": len(children)}, status=202)


@bp.route(route="corpora", methods=["POST"])
async def upload_corpus(req: func.HttpRequest) -> func.HttpResponse:
    """Store a corpus (plain text body, or JSON {documents} / {text}) and return its id."""
    try:
        if (req.headers.get("content-type") or "").startswith("text/"):
            text, documents = req.get_body().decode("utf-8"), None
        else:
            upload = parse_body(req, CorpusUpload, "corpus")
            if (upload.documents is None) == (upload.text is None):
                raise BadRequest("give exactly one of 'documents' or 'text'")
            documents = upload.documents
            text = render_documents(documents) if documents else upload.text or ""
    except BadRequest as exc:
        return exc.response()
    except UnicodeDecodeError:
        return error_response(400, "a text corpus must be UTF-8")
    if not text.strip():
        return error_response(400, "the corpus is empty")
    store = services.store()
    corpus_id = await asyncio.to_thread(save_corpus, store, text, documents)
    index = await asyncio.to_thread(load_index, store, corpus_id)
    return json_response({"corpus_id": corpus_id, "chars": index.chars, "sections": len(index.sections)}, status=201)
