"""An Azure AI Search compatible server on loopback, for the calls the app makes: create
or update an index, upload documents, and search them (full text, vector, hybrid) with an
OData `eq` filter. It checks the bearer token and the api-version like the service does, so
the real `azure-search-documents` client code path runs against it.

Ranking here is deliberately simple (matching-term counts, cosine, reciprocal rank fusion):
it only has to put relevant passages first, the way the service would.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

INDEX_ROUTE = re.compile(r"^/indexes\('(?P<name>[^']+)'\)$")
DOCS_ROUTE = re.compile(r"^/indexes\('(?P<name>[^']+)'\)/docs/(?P<op>search\.index|search\.post\.search)$")
EQ_FILTER = re.compile(r"^\s*(\w+) eq '([^']*)'\s*$")
WORD = re.compile(r"[^\W_]+")


@dataclass
class SearchRequestLog:
    method: str
    path: str
    api_version: str | None
    body: dict[str, Any] | None


@dataclass
class _State:
    token: str
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[SearchRequestLog] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _rank(docs: list[dict[str, Any]], body: dict[str, Any]) -> list[tuple[dict[str, Any], float]]:
    rankings: list[list[tuple[dict[str, Any], float]]] = []
    text = body.get("search")
    if text and text != "*":
        terms = set(WORD.findall(text.casefold()))
        scored = []
        for doc in docs:
            words = WORD.findall(f"{doc.get('title', '')} {doc.get('text', '')}".casefold())
            hits = sum(1 for w in words if w in terms)
            if hits:
                scored.append((doc, float(hits)))
        rankings.append(sorted(scored, key=lambda pair: -pair[1]))
    for query in body.get("vectorQueries") or []:
        scored = [(doc, _cosine(query["vector"], doc.get(query["fields"], []))) for doc in docs]
        rankings.append(sorted(scored, key=lambda pair: -pair[1])[: query.get("k") or 50])
    if len(rankings) == 1:
        return rankings[0]
    fused: dict[str, tuple[dict[str, Any], float]] = {}
    for ranking in rankings:
        for rank, (doc, _) in enumerate(ranking, start=1):
            previous = fused.get(doc["id"], (doc, 0.0))[1]
            fused[doc["id"]] = (doc, previous + 1 / (60 + rank))
    return sorted(fused.values(), key=lambda pair: -pair[1])


class SearchServer:
    """`with SearchServer(token=...) as search:` then point AZURE_SEARCH_ENDPOINT at `search.url`."""

    def __init__(self, token: str = "loopback-token") -> None:
        self._state = _State(token=token)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._state))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> SearchServer:
        threading.Thread(target=self.httpd.serve_forever, name="search-loopback", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def requests(self) -> list[SearchRequestLog]:
        with self._state.lock:
            return list(self._state.requests)

    def index(self, name: str) -> dict[str, Any] | None:
        return self._state.indexes.get(name)

    def documents(self, name: str) -> dict[str, dict[str, Any]]:
        return dict(self._state.documents.get(name, {}))


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: requests are recorded in the state."""

        def _body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("content-length") or 0)
            return json.loads(self.rfile.read(length)) if length else None

        def _reply(self, status: int, payload: dict[str, Any] | None) -> None:
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            self.send_header("content-type", "application/json; odata.metadata=minimal")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: str, message: str) -> None:
            self._reply(status, {"error": {"code": code, "message": message}})

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            api_version = parse_qs(url.query).get("api-version", [None])[0]
            body = self._body() if method in ("PUT", "POST") else None
            with state.lock:
                state.requests.append(SearchRequestLog(method, path, api_version, body))
            if self.headers.get("authorization") != f"Bearer {state.token}":
                self._error(403, "Forbidden", "Authorization failed: no valid bearer token")
                return
            if not api_version:
                self._error(400, "MissingApiVersionParameter", "The api-version query parameter is required")
                return
            if (m := INDEX_ROUTE.match(path)) and method == "PUT":
                self._put_index(m.group("name"), body or {})
            elif (m := INDEX_ROUTE.match(path)) and method == "GET":
                found = state.indexes.get(m.group("name"))
                self._reply(200, found) if found else self._error(404, "ResourceNotFound", "No index with that name")
            elif (m := DOCS_ROUTE.match(path)) and method == "POST":
                name = m.group("name")
                if name not in state.indexes:
                    self._error(404, "ResourceNotFound", f"The index '{name}' was not found")
                elif m.group("op") == "search.index":
                    self._index_documents(name, body or {})
                else:
                    self._search(name, body or {})
            else:
                self._error(404, "ResourceNotFound", f"No route {method} {path}")

        def _put_index(self, name: str, definition: dict[str, Any]) -> None:
            if definition.get("name") != name or not any(f.get("key") for f in definition.get("fields", [])):
                self._error(400, "InvalidRequestParameter", "The index needs its name and a key field")
                return
            created = name not in state.indexes
            state.indexes[name] = definition
            state.documents.setdefault(name, {})
            self._reply(201 if created else 200, definition)

        def _index_documents(self, name: str, body: dict[str, Any]) -> None:
            key = next(f["name"] for f in state.indexes[name]["fields"] if f.get("key"))
            results = []
            for doc in body.get("value", []):
                action = doc.pop("@search.action", "upload")
                stored = state.documents[name]
                if action in ("upload", "mergeOrUpload"):
                    stored[doc[key]] = {**stored.get(doc[key], {}), **doc}
                results.append({"key": doc[key], "status": True, "errorMessage": None, "statusCode": 200})
            self._reply(200, {"value": results})

        def _search(self, name: str, body: dict[str, Any]) -> None:
            docs = list(state.documents[name].values())
            if body.get("filter"):
                match = EQ_FILTER.match(body["filter"])
                if match is None:
                    self._error(400, "InvalidRequestParameter", f"Unsupported filter {body['filter']!r}")
                    return
                docs = [d for d in docs if str(d.get(match.group(1))) == match.group(2)]
            ranked = _rank(docs, body)[: body.get("top") or 50]
            select = [s.strip() for s in body["select"].split(",")] if body.get("select") else None
            value = [{"@search.score": score, **({k: d.get(k) for k in select} if select else d)} for d, score in ranked]
            self._reply(200, {"value": value})

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_POST(self) -> None:
            self._route("POST")

        def do_GET(self) -> None:
            self._route("GET")

    return Handler
