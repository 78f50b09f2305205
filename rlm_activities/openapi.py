"""The OpenAPI 3.1 document of the HTTP API, generated from the pydantic models the routes
read and answer with, and served at `GET /api/openapi.json`.

Each route's entry below names its parameters, body and every status it answers, with
the model of each body; the schemas themselves come from the models. A test checks that
every HTTP function of the app is described here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from openapi_pydantic import (
    Components,
    Header,
    Info,
    MediaType,
    OpenAPI,
    Operation,
    Parameter,
    PathItem,
    RequestBody,
    Response,
    Schema,
    SecurityScheme,
)
from openapi_pydantic.util import PydanticSchema, construct_open_api_with_schema_class
from pydantic import BaseModel

from rlm_activities.api_models import (
    BatchList,
    BatchStarted,
    BatchStatus,
    CancelAccepted,
    CorpusList,
    CorpusStored,
    DurableLinks,
    ErrorBody,
    QueryList,
    QueryStatus,
    SectionText,
)
from rlm_activities.batch_models import BATCH_ID, BatchRequest
from rlm_activities.cancel import REASON_CHARS
from rlm_activities.compare_http import CompareCancelAccepted, CompareList, CompareStarted, CompareStatus
from rlm_activities.http_api import CorpusUpload
from rlm_activities.http_io import IDEMPOTENCY_KEY, LIST_DEFAULT, LIST_MAX, RETRY_AFTER_SECONDS, json_response
from shared.compare import COMPARE_ID, CompareRequest
from shared.models import NOT_BLANK, SHA256_HEX, QueryRequest
from shared.step_models import INSTANCE_ID
from shared.trace import TraceNode

bp = df.Blueprint()

TITLE = "Recursive Language Models"
VERSION = "1.0.0"
Body = type[BaseModel] | Schema


@dataclass(frozen=True)
class Reply:
    description: str
    body: Body | None = ErrorBody
    media: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    alternatives: dict[str, Body] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation_id: str
    summary: str
    replies: dict[int, Reply]
    body: dict[str, Body] = field(default_factory=dict)
    parameters: tuple[Parameter, ...] = ()


def _path(name: str, pattern: str, what: str) -> Parameter:
    return Parameter(
        name=name, param_in="path", required=True, description=what, param_schema=Schema(type="string", pattern=pattern)
    )


def _query(name: str, schema: Schema, what: str, *, required: bool = False) -> Parameter:
    return Parameter(name=name, param_in="query", required=required, description=what, param_schema=schema)


QUERY_ID = _path("instance_id", INSTANCE_ID, "a query's instance id")
BATCH = _path("batch_id", BATCH_ID, "a batch id")
CORPUS = _path("corpus_id", SHA256_HEX, "a stored corpus id (its sha256)")
COMPARISON = _path("compare_id", COMPARE_ID, "a comparison id")
LIMIT = _query("limit", Schema(type="integer", minimum=1, maximum=LIST_MAX, default=LIST_DEFAULT), "how many, newest first")
REASON = _query("reason", Schema(type="string", maxLength=REASON_CHARS), "why: the termination reason Durable records")
KEY = Parameter(
    name="Idempotency-Key",
    param_in="header",
    description="the same key and body start one instance and get the same links; the same key with another body gets 409",
    param_schema=Schema(type="string", pattern=IDEMPOTENCY_KEY),
)
TEXT = Schema(type="string")
BAD = Reply("the request is invalid: a field, an id or a parameter (details say which)")
TOO_LARGE = Reply("the body is larger than the service reads")
URL_TOO_LONG = Reply("the URL (a long reason, say) is longer than the service reads")
RETRY_AFTER = f"seconds to wait before retrying ({RETRY_AFTER_SECONDS})"
UI_FILES: dict[str, Body] = {kind: TEXT for kind in ("text/javascript", "text/css", "image/svg+xml", "application/json")}

ROUTES: tuple[Route, ...] = (
    Route(
        "post",
        "/api/queries",
        "start_query",
        "Start a query over a corpus",
        {
            202: Reply("started; poll statusQueryGetUri", DurableLinks, headers={"Location": "the status query link"}),
            200: Reply("this Idempotency-Key and body started it before: the same links", DurableLinks),
            400: BAD,
            404: Reply("the corpus_id names no stored corpus"),
            409: Reply("this Idempotency-Key started a query with another body"),
            413: TOO_LARGE,
            429: Reply("as many queries are running as the service allows", headers={"Retry-After": RETRY_AFTER}),
        },
        body={"application/json": QueryRequest},
        parameters=(KEY,),
    ),
    Route(
        "get",
        "/api/queries",
        "list_queries",
        "The newest queries",
        {200: Reply("newest first", QueryList), 400: BAD},
        parameters=(LIMIT,),
    ),
    Route(
        "get",
        "/api/queries/{instance_id}",
        "get_query",
        "A query's status, progress and result",
        {200: Reply("status, progress, and the result once done", QueryStatus), 400: BAD, 404: Reply("no such query")},
        parameters=(QUERY_ID,),
    ),
    Route(
        "get",
        "/api/queries/{instance_id}/trace",
        "get_trace",
        "A query's recursion tree with every step",
        {
            200: Reply("the tree (text/html: the web UI's trace view, after the redirect)", TraceNode, alternatives={"text/html": TEXT}),
            302: Reply("?format=html: the web UI's trace view", None, headers={"Location": "/api/ui/trace/{instance_id}"}),
            400: BAD,
            404: Reply("no trace for that query"),
        },
        parameters=(QUERY_ID, _query("format", Schema(type="string", enum=["json", "html"], default="json"), "json or html")),
    ),
    Route(
        "post",
        "/api/queries/{instance_id}/cancel",
        "cancel_query",
        "Cancel a running query and its sub-queries",
        {
            202: Reply("terminating", CancelAccepted),
            400: BAD,
            404: Reply("no such query"),
            409: Reply("the query is not running"),
            414: URL_TOO_LONG,
        },
        parameters=(QUERY_ID, REASON),
    ),
    Route(
        "post",
        "/api/corpora",
        "upload_corpus",
        "Store a corpus once, to query it by id",
        {201: Reply("stored (or stored before: the same id)", CorpusStored), 400: BAD, 413: TOO_LARGE},
        body={"application/json": CorpusUpload, "text/plain": Schema(type="string", pattern=NOT_BLANK.pattern)},
    ),
    Route(
        "get",
        "/api/corpora",
        "list_corpora",
        "Stored corpora",
        {200: Reply("newest first", CorpusList), 400: BAD},
        parameters=(LIMIT,),
    ),
    Route(
        "get",
        "/api/corpora/{corpus_id}/sections",
        "get_section",
        "One section of a stored corpus, by title",
        {200: Reply("the section's text", SectionText), 400: BAD, 404: Reply("no such corpus or section")},
        parameters=(CORPUS, _query("title", Schema(type="string", minLength=1), "the section title", required=True)),
    ),
    Route(
        "post",
        "/api/batches",
        "start_batch",
        "Start a batch of questions over one corpus",
        {
            202: Reply("started; poll status_url", BatchStarted, headers={"Location": "the batch's status_url"}),
            200: Reply("this batch_id (or Idempotency-Key) and body started it before: the same links", BatchStarted),
            400: BAD,
            404: Reply("the corpus_id names no stored corpus"),
            409: Reply("this batch_id was started with another body"),
            413: TOO_LARGE,
        },
        body={"application/json": BatchRequest},
        parameters=(KEY,),
    ),
    Route(
        "get",
        "/api/batches",
        "list_batches",
        "The newest batches",
        {200: Reply("newest first", BatchList), 400: BAD},
        parameters=(LIMIT,),
    ),
    Route(
        "get",
        "/api/batches/{batch_id}",
        "get_batch",
        "A batch's progress, then its summary",
        {200: Reply("progress, and the summary once done", BatchStatus), 400: BAD, 404: Reply("no such batch")},
        parameters=(BATCH,),
    ),
    Route(
        "get",
        "/api/batches/{batch_id}/results",
        "get_batch_results",
        "A batch's rows as JSON Lines",
        {200: Reply("one JSON object per question", TEXT, media="application/x-ndjson"), 400: BAD, 404: Reply("no rows (yet)")},
        parameters=(BATCH,),
    ),
    Route(
        "post",
        "/api/compare",
        "start_compare",
        "Answer one question with RLM and retrieval baselines side by side",
        {
            202: Reply("started; poll status_url", CompareStarted, headers={"Location": "the comparison's status_url"}),
            200: Reply("this Idempotency-Key and body started it before: the same links", CompareStarted),
            400: BAD,
            404: Reply("the corpus_id names no stored corpus"),
            409: Reply("this Idempotency-Key started a comparison with another body"),
            413: TOO_LARGE,
            429: Reply("as many queries are running as the service allows", headers={"Retry-After": RETRY_AFTER}),
        },
        body={"application/json": CompareRequest},
        parameters=(KEY,),
    ),
    Route(
        "get",
        "/api/compare",
        "list_compare",
        "The newest comparisons",
        {200: Reply("newest first", CompareList), 400: BAD},
        parameters=(LIMIT,),
    ),
    Route(
        "get",
        "/api/compare/{compare_id}",
        "get_compare",
        "A comparison's progress, then every strategy's answer with its scores",
        {200: Reply("progress, and the result once done", CompareStatus), 400: BAD, 404: Reply("no such comparison")},
        parameters=(COMPARISON,),
    ),
    Route(
        "post",
        "/api/compare/{compare_id}/cancel",
        "cancel_compare",
        "Cancel a running comparison, its strategies and their sub-queries",
        {
            202: Reply("terminating", CompareCancelAccepted),
            400: BAD,
            404: Reply("no such comparison"),
            409: Reply("the comparison is not running"),
            414: URL_TOO_LONG,
        },
        parameters=(COMPARISON, REASON),
    ),
    Route(
        "get",
        "/api/ui/{path}",
        "web_ui",
        "The web UI: its files, and its page for any of its own routes",
        {
            200: Reply("a file of the built UI; its page for a path without an extension", TEXT, media="text/html", alternatives=UI_FILES),
            304: Reply("unchanged since the ETag the browser sent", None),
            404: Reply("no such file in the UI"),
            503: Reply("the UI is not built"),
        },
        parameters=(_path("path", ".*", "a file of the UI, or one of its routes (trace/{id}, benchmarks, ...)"),),
    ),
    Route(
        "get",
        "/api/openapi.json",
        "openapi_document",
        "This document",
        {200: Reply("the OpenAPI 3.1 document", Schema(type="object"))},
    ),
)


def _schema(body: Body) -> Schema:
    return body if isinstance(body, Schema) else PydanticSchema(schema_class=body)


def _response(reply: Reply) -> Response:
    content = None
    if reply.body is not None:
        content = {reply.media: MediaType(media_type_schema=_schema(reply.body))}
        content |= {media: MediaType(media_type_schema=_schema(body)) for media, body in reply.alternatives.items()}
    headers = {name: Header(description=text, param_schema=Schema(type="string")) for name, text in reply.headers.items()}
    return Response(description=reply.description, content=content, headers=headers or None)


def _operation(route: Route) -> Operation:
    body = None
    if route.body:
        content = {media: MediaType(media_type_schema=_schema(b)) for media, b in route.body.items()}
        body = RequestBody(required=True, content=content)
    return Operation(
        operationId=route.operation_id,
        summary=route.summary,
        parameters=list(route.parameters) or None,
        requestBody=body,
        responses={str(code): _response(reply) for code, reply in sorted(route.replies.items())},
    )


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    paths: dict[str, PathItem] = {}
    for route in ROUTES:
        item = paths.setdefault(route.path, PathItem())
        setattr(item, route.method, _operation(route))
    key_schemes = {
        "functionKey": SecurityScheme(type="apiKey", name="x-functions-key", security_scheme_in="header"),
        "functionKeyQuery": SecurityScheme(type="apiKey", name="code", security_scheme_in="query"),
    }
    spec = OpenAPI(
        openapi="3.1.0",
        info=Info(
            title=TITLE,
            version=VERSION,
            description="Answers over corpora far larger than a context window, as durable Azure Functions. "
            "In Azure every route needs a function key (x-functions-key header or ?code=); the local devhost needs none.",
        ),
        paths=paths,
        components=Components(securitySchemes=key_schemes),
        security=[{"functionKey": []}, {"functionKeyQuery": []}, {}],
    )
    built = construct_open_api_with_schema_class(spec)
    return built.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)


@bp.route(route="openapi.json", methods=["GET"])
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """The contract of every route and error body, for clients and fuzzers."""
    return json_response(document())
