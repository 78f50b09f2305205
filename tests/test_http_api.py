"""The HTTP API users touch, served by the embedded host over real sockets, with the
real orchestrator, Copilot CLI, scripted model and local sandbox behind it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.llm import close_models
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import question_of, repl

pytestmark = pytest.mark.timeout(300)
DOCUMENTS = [
    {"id": "d1", "title": "Harbor", "content": "The harbor gauge reads 4.2 metres."},
    {"id": "d2", "title": "Ridge", "content": "The ridge gauge reads 9.9 metres."},
]
GAUGE_SCRIPT = repl(
    "import re\n"
    "parts = context.split('\\n\\n## ')\n"
    "best = max(parts, key=lambda p: float(re.search(r'reads ([0-9.]+)', p).group(1)))\n"
    "used_sections = [best.lstrip('# ').splitlines()[0]]\n"
    "Final = used_sections[0]"
)


def serve_app(state_dir: Path, body: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    from devhost import EmbeddedHost
    from function_app import app

    async def main() -> Any:
        async with EmbeddedHost(app, state_dir=state_dir) as host:
            ready = asyncio.Event()
            server = asyncio.create_task(host.serve(port=0, ready=ready))
            await asyncio.wait_for(ready.wait(), 30)
            try:
                async with httpx.AsyncClient(base_url=host.public_url, timeout=60) as client:
                    return await body(client)
            finally:
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)
                await close_models()

    return asyncio.run(main())


async def poll(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    while True:
        response = await client.get(url)
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 202, response.text
        await asyncio.sleep(0.05)


def test_start_poll_result_and_trace(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(GAUGE_SCRIPT)

    async def body(client: httpx.AsyncClient):
        started = await client.post("/api/queries", json={"question": "Which <gauge> is highest?", "documents": DOCUMENTS})
        assert started.status_code == 202, started.text
        links = started.json()
        status = await poll(client, links["statusQueryGetUri"])
        query = (await client.get(f"/api/queries/{links['id']}")).json()
        trace = (await client.get(f"/api/queries/{links['id']}/trace")).json()
        html = await client.get(f"/api/queries/{links['id']}/trace", params={"format": "html"})
        return status, query, trace, html

    status, query, trace, html = serve_app(rlm_env, body)
    assert status["runtimeStatus"] == "Completed"
    assert query["status"] == "Completed"
    assert query["result"]["answer"] == "Ridge"
    assert query["result"]["sources"] == [{"title": "Ridge", "document_id": "d2"}]
    assert [s["kind"] for s in trace["steps"]] == ["generate", "execute"]
    assert trace["steps"][1]["cell"]["final"] == "Ridge"
    assert html.status_code == 302
    assert html.headers["location"] == f"/api/ui/trace/{query['instance_id']}"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"documents": [{"title": "a", "content": "b"}]}', "question"),
        (b'{"question": "q", "corpus": "x", "documents": [{"title": "a", "content": "b"}]}', "exactly one"),
        (b'{"question": "q", "corpus": "x", "options": {"max_depth": 99}}', "max_depth"),
        (b'{"question": "q", "corpus": "x", "surprise": 1}', "surprise"),
        (b'{"question": "q", "corpus_id": "not-a-hash"}', "corpus_id"),
    ],
)
def test_bad_query_bodies_get_400_with_reason(rlm_env: Path, model_server: ModelServer, body: bytes, problem: str) -> None:
    async def post(client: httpx.AsyncClient):
        return await client.post("/api/queries", content=body, headers={"content-type": "application/json"})

    response = serve_app(rlm_env, post)
    assert response.status_code == 400
    assert problem in response.text
    assert "error" in response.json()
    assert not model_server.calls


def test_unknown_ids_get_404(rlm_env: Path, model_server: ModelServer) -> None:
    async def body(client: httpx.AsyncClient):
        return [
            await client.post("/api/queries", json={"question": "q", "corpus_id": "0" * 64}),
            await client.get("/api/queries/nope-1234"),
            await client.get("/api/queries/nope-1234/trace"),
            await client.post("/api/queries/nope-1234/cancel"),
        ]

    responses = serve_app(rlm_env, body)
    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert all("error" in r.json() for r in responses)


def test_uploaded_corpus_is_queried_by_id(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(GAUGE_SCRIPT)
    text = "\n\n".join(f"## {d['title']}\n{d['content']}" for d in DOCUMENTS)

    async def body(client: httpx.AsyncClient):
        uploaded = await client.post("/api/corpora", content=text.encode(), headers={"content-type": "text/plain"})
        again = await client.post("/api/corpora", json={"text": text})
        empty = await client.post("/api/corpora", json={"text": "x", "documents": DOCUMENTS})
        started = await client.post("/api/queries", json={"question": "Highest?", "corpus_id": uploaded.json()["corpus_id"]})
        status = await poll(client, started.json()["statusQueryGetUri"])
        return uploaded, again, empty, status

    uploaded, again, empty, status = serve_app(rlm_env, body)
    assert uploaded.status_code == 201 and uploaded.json()["sections"] == 2
    assert again.json()["corpus_id"] == uploaded.json()["corpus_id"]
    assert empty.status_code == 400
    assert status["output"]["answer"] == "Ridge"


def test_cancel_stops_a_query_and_its_sub_queries(rlm_env: Path, model_server: ModelServer) -> None:
    both_asking = threading.Barrier(3, timeout=60)
    release = threading.Event()

    def script(request: ScriptedRequest):
        if question_of(request) == "fan out":
            return repl("Final = ' '.join(rlm_query_batch(['slow a', 'slow b']))")
        both_asking.wait()
        release.wait(60)
        return repl("print('still going')")

    model_server.set_script(script)

    async def body(client: httpx.AsyncClient):
        started = (await client.post("/api/queries", json={"question": "fan out", "corpus": "## a\nb"})).json()
        await asyncio.to_thread(both_asking.wait)
        cancelled = await client.post(f"/api/queries/{started['id']}/cancel")
        release.set()
        root = await poll(client, started["statusQueryGetUri"])
        children = [
            await poll(client, started["statusQueryGetUri"].replace(started["id"], f"{started['id']}-1-{k}")) for k in (0, 1)
        ]
        twice = await client.post(f"/api/queries/{started['id']}/cancel")
        return cancelled, root, children, twice

    cancelled, root, children, twice = serve_app(rlm_env, body)
    assert cancelled.status_code == 202 and cancelled.json()["sub_queries"] == 2
    assert root["runtimeStatus"] == "Terminated"
    assert [c["runtimeStatus"] for c in children] == ["Terminated", "Terminated"]
    assert twice.status_code == 409
