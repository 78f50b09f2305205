"""HTTP triggers users touch: start, list and read queries, their results and traces,
cancel one; store, list and read corpora. Bad input gets a 4xx with a JSON body."""

from __future__ import annotations

import asyncio
import json
import uuid

import azure.durable_functions as df
import azure.functions as func
from pydantic import ConfigDict, Field, model_validator

from rlm_activities import services
from rlm_activities.api_models import (
    CancelAccepted,
    CorpusList,
    CorpusStored,
    CorpusSummary,
    QueryList,
    QueryStatus,
    QuerySummary,
    SectionText,
)
from rlm_activities.cancel import cancel_link, cancel_reason, cancel_tree
from rlm_activities.http_io import (
    ApiError,
    error_response,
    idempotency_key,
    instance_summary,
    json_response,
    listed,
    listed_state,
    parse_body,
    path_id,
)
from rlm_activities.orchestrator import ORCHESTRATOR
from rlm_activities.starts import key_id, start_admitted
from rlm_activities.web_ui import trace_page
from shared.catalog import Outcome, body_digest, listing_text
from shared.corpus import CorpusError, render_documents, save_corpus, section_text
from shared.models import SHA256_HEX, Document, NonBlank, QueryRequest, Strict, exactly_one_of
from shared.starting import register_corpus, root_task
from shared.step_models import INSTANCE_ID
from shared.telemetry.context import start_trace
from shared.trace import trace_tree

bp = df.Blueprint()


class CorpusUpload(Strict):
    """A corpus to store once and query many times by id: `text` or `documents`."""

    model_config = ConfigDict(json_schema_extra=exactly_one_of("documents", "text"))

    documents: list[Document] | None = Field(None, min_length=1)
    text: NonBlank | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CorpusUpload:
        if (self.documents is None) == (self.text is None):
            raise ValueError("give exactly one of 'documents' or 'text'")
        return self


@bp.route(route="queries", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_query(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a query: 202 with the Durable links; with an Idempotency-Key, once per key."""
    try:
        return await _start_query(req, client)
    except ApiError as exc:
        return exc.response()


async def _start_query(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    request = parse_body(req, QueryRequest, "query request")
    key = idempotency_key(req)
    instance_id = key_id(key) if key else uuid.uuid4().hex
    trace = start_trace(req.headers)  # the caller's trace, when it sent a traceparent

    outcome = await start_admitted(
        client, "queries", instance_id, keyed=key is not None, digest=body_digest(request),
        fields={"question": listing_text(request.question)}, orchestrator=ORCHESTRATOR,
        build=lambda: root_task(request, instance_id, services.settings(), services.store(), trace),
    )  # fmt: skip
    if outcome is Outcome.CONFLICT:
        return _key_conflict(req, client, instance_id)
    return _links_response(req, client, instance_id, 202 if outcome is Outcome.NEW else 200)


def _links_response(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, instance_id: str, status: int
) -> func.HttpResponse:
    links = cancel_link(req, client.get_client_response_links(req, instance_id), f"queries/{instance_id}/cancel")
    return json_response(links, status, {"Location": links["statusQueryGetUri"]})


def _key_conflict(req: func.HttpRequest, client: df.DurableOrchestrationClient, instance_id: str) -> func.HttpResponse:
    links = client.get_client_response_links(req, instance_id)
    message = "this Idempotency-Key started a query with another body; use a new key for a new query"
    return error_response(409, message, {"id": instance_id, "statusQueryGetUri": links["statusQueryGetUri"]})


@bp.route(route="queries", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_queries(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The newest queries started over HTTP, newest first, with their status."""
    try:
        entries = await listed(req, "queries")
    except ApiError as exc:
        return exc.response()
    statuses = await asyncio.gather(*(client.get_status(e.id) for e in entries))
    queries = [
        QuerySummary(instance_id=e.id, status=listed_state(s), question=e.fields.get("question", ""), created=e.created)
        for e, s in zip(entries, statuses, strict=True)
    ]
    return json_response(QueryList(queries=queries))


@bp.route(route="queries/{instance_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_query(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Progress while running; the result (or the error) when done."""
    try:
        instance_id = path_id(req, "instance_id", INSTANCE_ID, "query id")
    except ApiError as exc:
        return exc.response()
    summary = await instance_summary(client, instance_id, "result", ORCHESTRATOR)
    if summary is None:
        return error_response(404, f"no query with id {instance_id}")
    return json_response(QueryStatus.model_validate({"instance_id": instance_id} | summary))


@bp.route(route="queries/{instance_id}/trace", methods=["GET"])
async def get_trace(req: func.HttpRequest) -> func.HttpResponse:
    """The recursion tree with every step as JSON; `?format=html` is the web UI's trace view."""
    try:
        instance_id = path_id(req, "instance_id", INSTANCE_ID, "query id")
        view = req.params.get("format", "json")
        if view not in ("json", "html"):
            raise ApiError("format must be json or html", [{"field": "format", "problem": "one of json, html"}])
    except ApiError as exc:
        return exc.response()
    if view == "html":
        return func.HttpResponse(status_code=302, headers={"Location": trace_page(instance_id, req.params.get("code"))})
    tree = await asyncio.to_thread(trace_tree, services.traces(), instance_id)
    if tree is None:
        return error_response(404, f"no trace for query {instance_id}")
    return func.HttpResponse(tree.model_dump_json(), mimetype="application/json")


@bp.route(route="queries/{instance_id}/cancel", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def cancel_query(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Stop a running root query, its sub-queries and their sandboxes: the 202's `terminatePostUri`."""
    try:
        instance_id = path_id(req, "instance_id", INSTANCE_ID, "query id")
        reason = cancel_reason(req)
    except ApiError as exc:
        return exc.response()
    status = await client.get_status(instance_id, show_input=True)
    if status is None or status.runtime_status is None or status.name != ORCHESTRATOR:
        return error_response(404, f"no query with id {instance_id}")
    if _is_sub_query(status.input_):
        return error_response(409, f"{instance_id} is a sub-query: only a root query can be cancelled")
    if status.runtime_status.value not in ("Running", "Pending"):
        return error_response(409, f"query {instance_id} is {status.runtime_status.value}, not running")
    sub_queries = await cancel_tree(client, instance_id, reason)
    return json_response(CancelAccepted(instance_id=instance_id, sub_queries=sub_queries), status=202)


def _is_sub_query(orchestration_input: object) -> bool:
    """An RLM orchestration's input names its parent (a JSON text in the devhost, a value in Azure)."""
    if isinstance(orchestration_input, str):
        try:
            orchestration_input = json.loads(orchestration_input)
        except ValueError:
            return False
    return isinstance(orchestration_input, dict) and orchestration_input.get("parent_id") is not None


@bp.route(route="corpora", methods=["POST"])
async def upload_corpus(req: func.HttpRequest) -> func.HttpResponse:
    """Store a corpus (plain text body, or JSON {documents} / {text}) and return its id."""
    try:
        if (req.headers.get("content-type") or "").startswith("text/"):
            try:
                upload = CorpusUpload.model_validate({"text": (req.get_body() or b"").decode("utf-8")})
            except UnicodeDecodeError:
                raise ApiError("a text corpus must be UTF-8") from None
            except ValueError:
                raise ApiError("the corpus is empty") from None
        else:
            upload = parse_body(req, CorpusUpload, "corpus")
    except ApiError as exc:
        return exc.response()
    documents = upload.documents
    text = render_documents(documents) if documents else upload.text or ""
    store = services.store()
    corpus_id = await asyncio.to_thread(save_corpus, store, text, documents)
    index = await asyncio.to_thread(register_corpus, store, corpus_id)
    return json_response(CorpusStored(corpus_id=corpus_id, chars=index.chars, sections=len(index.sections)), status=201)


@bp.route(route="corpora", methods=["GET"])
async def list_corpora(req: func.HttpRequest) -> func.HttpResponse:
    """Stored corpora, newest first."""
    try:
        entries = await listed(req, "corpora")
    except ApiError as exc:
        return exc.response()
    corpora = [CorpusSummary(corpus_id=e.id, created=e.created, **e.fields) for e in entries]
    return json_response(CorpusList(corpora=corpora))


@bp.route(route="corpora/{corpus_id}/sections", methods=["GET"])
async def get_section(req: func.HttpRequest) -> func.HttpResponse:
    """One section of a stored corpus by title: the text a source citation points at."""
    try:
        corpus_id = path_id(req, "corpus_id", SHA256_HEX, "corpus id")
        title = req.params.get("title")
        if not title:
            raise ApiError("give the section's title", [{"field": "title", "problem": "required"}])
    except ApiError as exc:
        return exc.response()
    store = services.store()
    try:
        text = await asyncio.to_thread(section_text, store, corpus_id, title)
    except CorpusError as exc:
        return error_response(404, str(exc))
    if text is None:
        return error_response(404, f"corpus {corpus_id} has no section titled {title!r}")
    return json_response(SectionText(corpus_id=corpus_id, title=title, text=text))
