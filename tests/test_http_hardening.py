"""The HTTP API under bad input and repetition, through a live devhost serve: strict types,
bounded JSON, ids checked on every route, Idempotency-Key, the running-query limit, and
the listing routes the web UI reads."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from rlm_activities import services
from shared.admission import Slots
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import question_of, repl
from tests.test_http_api import DOCUMENTS, GAUGE_SCRIPT, poll, serve_app

pytestmark = pytest.mark.timeout(300)
DEEP = b"[" * 100_000 + b"]" * 100_000
COUNT_SCRIPT = repl("Final = str(context.count('gauge'))")


def nested(levels: int) -> bytes:
    return b'{"question": "q", "corpus": "x", "options": {"root_model": ' + b"[" * levels + b"]" * levels + b"}}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"question": "q", "corpus": "x", "options": {"max_depth": true}}', "options.max_depth"),
        (b'{"question": "q", "corpus": "x", "options": {"max_iterations": "5"}}', "options.max_iterations"),
        (b'{"question": "q", "corpus": "x", "options": {"max_iterations": 5.0}}', "options.max_iterations"),
        (b'{"question": "  \\n\\t ", "corpus": "x"}', "question"),
        (b'{"question": "q", "corpus": " \\n "}', "corpus"),
        (b'{"question": "q", "documents": [{"title": "  ", "content": "c"}]}', "documents.0.title"),
        (b'{"question": 7, "corpus": "x"}', "question"),
    ],
)
def test_loose_types_and_blank_text_are_refused(rlm_env: Path, model_server: ModelServer, body: bytes, field: str) -> None:
    async def post(client: httpx.AsyncClient):
        return await client.post("/api/queries", content=body, headers={"content-type": "application/json"})

    response = serve_app(rlm_env, post)
    assert response.status_code == 400, response.text
    assert field in [d["field"] for d in response.json()["details"]]
    assert not model_server.calls


@pytest.mark.parametrize("route", ["/api/queries", "/api/batches", "/api/corpora"])
@pytest.mark.parametrize("body", [DEEP, nested(40)], ids=["100000 levels", "40 levels"])
def test_deeply_nested_json_is_a_400_on_every_post_route(
    rlm_env: Path, model_server: ModelServer, route: str, body: bytes
) -> None:
    async def post(client: httpx.AsyncClient):
        return await client.post(route, content=body, headers={"content-type": "application/json"})

    response = serve_app(rlm_env, post)
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/json")
    assert "nested more than 32 levels" in response.json()["error"]


def test_a_body_nested_within_the_limit_reaches_validation(rlm_env: Path, model_server: ModelServer) -> None:
    async def post(client: httpx.AsyncClient):
        return await client.post("/api/queries", content=nested(10), headers={"content-type": "application/json"})

    response = serve_app(rlm_env, post)
    assert response.status_code == 400 and response.json()["error"] == "invalid query request"


BAD_IDS = ["a%2Fb", "%2E%2E", "..%2F..%2Fetc", "x", "a b", "q%00q", "a" * 129]


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/api/queries/{id}"),
        ("GET", "/api/queries/{id}/trace"),
        ("POST", "/api/queries/{id}/cancel"),
        ("GET", "/api/batches/{id}"),
        ("GET", "/api/batches/{id}/results"),
        ("GET", "/api/corpora/{id}/sections?title=T"),
    ],
)
def test_malformed_ids_are_a_400_on_every_route(rlm_env: Path, model_server: ModelServer, method: str, template: str) -> None:
    async def send(client: httpx.AsyncClient):
        return [await client.request(method, template.format(id=bad)) for bad in BAD_IDS]

    for bad, response in zip(BAD_IDS, serve_app(rlm_env, send), strict=True):
        if bad == "%2E%2E":  # a dot segment resolves before routing, as in ASP.NET Core: no route, no id
            assert response.status_code == 404 and response.json()["error"], response.text
            continue
        assert response.status_code == 400, (response.url, response.status_code, response.text)
        assert "is not a valid" in response.json()["error"], response.text


def test_idempotency_key_gives_one_query_per_key_and_body(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(GAUGE_SCRIPT)
    body = {"question": "Which gauge is highest?", "documents": DOCUMENTS}

    async def send(client: httpx.AsyncClient):
        first = await client.post("/api/queries", json=body, headers={"Idempotency-Key": "order-77"})
        done = await poll(client, first.json()["statusQueryGetUri"])
        again = await client.post("/api/queries", json=body, headers={"Idempotency-Key": "order-77"})
        other = await client.post("/api/queries", json=body | {"question": "Lowest?"}, headers={"Idempotency-Key": "order-77"})
        bad_key = await client.post("/api/queries", json=body, headers={"Idempotency-Key": "has space"})
        return first, done, again, other, bad_key

    first, done, again, other, bad_key = serve_app(rlm_env, send)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert first.json()["id"].startswith("key-") and done["output"]["answer"] == "Ridge"
    assert other.status_code == 409 and other.json()["details"]["id"] == first.json()["id"]
    assert bad_key.status_code == 400 and bad_key.json()["details"][0]["field"] == "Idempotency-Key"
    assert len(model_server.calls) == 1


def test_concurrent_posts_with_one_idempotency_key_start_one_query(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(COUNT_SCRIPT)
    body = {"question": "How many gauges?", "documents": DOCUMENTS}

    async def send(client: httpx.AsyncClient):
        replies = await asyncio.gather(
            *(client.post("/api/queries", json=body, headers={"Idempotency-Key": "k-1"}) for _ in range(10))
        )
        return replies, await poll(client, replies[0].json()["statusQueryGetUri"])

    replies, done = serve_app(rlm_env, send)
    assert sorted(r.status_code for r in replies) == [200] * 9 + [202]
    assert len({r.json()["statusQueryGetUri"] for r in replies}) == 1
    assert done["output"]["answer"] == "2" and len(model_server.calls) == 1
    slots = Slots(services.store(), services.settings().max_running_queries)
    holders = [slot.holder.instance_id for slot in map(slots.read, range(slots.limit)) if slot.holder is not None]
    assert holders == [replies[0].json()["id"]], "the repeats gave their slots back"


def test_queries_beyond_the_running_limit_get_429_and_a_batch_still_runs(
    rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLM_MAX_RUNNING_QUERIES", "1")
    services.reset()
    asked = threading.Event()
    release = threading.Event()

    def script(request: ScriptedRequest):
        if question_of(request) == "slow":
            asked.set()
            release.wait(120)
        return COUNT_SCRIPT

    model_server.set_script(script)
    query = {"question": "slow", "documents": DOCUMENTS}

    async def send(client: httpx.AsyncClient):
        held = await client.post("/api/queries", json=query)
        await asyncio.to_thread(asked.wait, 120)
        refused = await client.post("/api/queries", json=query | {"question": "another"})
        keyed = await client.post("/api/queries", json=query | {"question": "keyed"}, headers={"Idempotency-Key": "wait-1"})
        batch = await client.post("/api/batches", json={"documents": DOCUMENTS, "questions": ["one?", "two?"], "concurrency": 2})
        batch_status = await poll_batch(client, batch.json()["status_url"])
        release.set()
        await poll(client, held.json()["statusQueryGetUri"])
        after = await client.post("/api/queries", json=query | {"question": "after"})
        return held, refused, keyed, batch_status, after, await poll(client, after.json()["statusQueryGetUri"])

    held, refused, keyed, batch_status, after, after_done = serve_app(rlm_env, send)
    assert held.status_code == 202
    for response in (refused, keyed):
        assert response.status_code == 429 and response.headers["retry-after"] == "5"
        assert response.json()["details"] == {"limit": 1, "retry_after_seconds": 5}
    assert batch_status["status"] == "Completed" and batch_status["summary"]["answered"] == 2
    assert after.status_code == 202 and after_done["output"]["answer"] == "2"
    asked_questions = [question_of(c.request) for c in model_server.calls]
    assert "another" not in asked_questions and "keyed" not in asked_questions


async def poll_batch(client: httpx.AsyncClient, url: str) -> dict:
    while (status := (await client.get(url)).json())["status"] in ("Pending", "Running"):
        await asyncio.sleep(0.05)
    return status


def test_listing_routes_show_the_newest_queries_corpora_and_batches(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(COUNT_SCRIPT)

    async def send(client: httpx.AsyncClient):
        first = await client.post("/api/queries", json={"question": "First?", "documents": DOCUMENTS})
        await poll(client, first.json()["statusQueryGetUri"])
        uploaded = (
            await client.post("/api/corpora", content=b"## Notes\nno gauges here", headers={"content-type": "text/plain"})
        ).json()
        second = await client.post("/api/queries", json={"question": "Second?", "corpus_id": uploaded["corpus_id"]})
        await poll(client, second.json()["statusQueryGetUri"])
        batch = await client.post("/api/batches", json={"batch_id": "listed", "documents": DOCUMENTS, "questions": ["Third?"]})
        await poll_batch(client, batch.json()["status_url"])
        gets = ["/api/queries", "/api/queries?limit=1", "/api/corpora", "/api/batches"]
        lists = [(await client.get(url)).json() for url in gets]
        corpus_id = lists[2]["corpora"][-1]["corpus_id"]
        sections = [
            await client.get(f"/api/corpora/{corpus_id}/sections", params={"title": title}) for title in ("Ridge", "Nowhere")
        ]
        sections.append(await client.get(f"/api/corpora/{corpus_id}/sections"))
        bad_limits = [(await client.get("/api/queries", params={"limit": v})).status_code for v in ("0", "abc", "101", "true")]
        return lists, sections, bad_limits

    (queries, one, corpora, batches), (ridge, nowhere, untitled), bad_limits = serve_app(rlm_env, send)
    assert [(q["question"], q["status"]) for q in queries["queries"]] == [("Second?", "Completed"), ("First?", "Completed")]
    assert [q["question"] for q in one["queries"]] == ["Second?"]
    assert [(c["chars"], c["sections"]) for c in corpora["corpora"]][0] == (len("## Notes\nno gauges here"), 1)
    assert corpora["corpora"][-1]["sections"] == 2
    assert len(corpora["corpora"]) == 2, "the batch's corpus is the first query's: listed once"
    [listed] = batches["batches"]
    assert listed["batch_id"] == "listed" and listed["status"] == "Completed" and listed["questions"] == 1
    assert listed["summary"]["answered"] == 1
    assert ridge.status_code == 200 and ridge.json()["text"] == "The ridge gauge reads 9.9 metres."
    assert nowhere.status_code == 404 and untitled.status_code == 400
    assert bad_limits == [400, 400, 400, 400]


def test_a_raw_webhook_start_gets_no_past_the_option_bounds(rlm_env: Path, model_server: ModelServer) -> None:
    """The system key rides in every status link, so anyone polling a query can start the
    orchestrator by Durable's own webhook: the task it sends is held to the same bounds."""
    model_server.set_script(COUNT_SCRIPT)

    async def body(client: httpx.AsyncClient):
        corpus = (await client.post("/api/corpora", json={"documents": DOCUMENTS})).json()["corpus_id"]
        links = (await client.post("/api/queries", json={"question": "How many gauges?", "corpus_id": corpus})).json()
        await poll(client, links["statusQueryGetUri"])
        url = httpx.URL(links["statusQueryGetUri"])
        start = url.copy_with(path="/runtime/webhooks/durabletask/orchestrators/rlm_orchestrator")
        task = {
            "question": {"text": "How many gauges?"}, "corpus_id": corpus, "max_depth": 1, "max_iterations": 3,
            "sub_max_iterations": 2, "truncate_chars": 1000, "root_model": "m", "sub_model": "m",
        }  # fmt: skip
        outcomes = {}
        for name, extra in {"fair": {"max_parallel": 16}, "wide": {"max_parallel": 100_000}, "deep": {"depth": 3}}.items():
            started = await client.post(
                str(start.copy_with(path=f"{start.path}/raw-{name}")), json=task | extra | {"root_id": f"raw-{name}"}
            )
            assert started.status_code == 202, started.text
            outcomes[name] = await poll(client, started.json()["statusQueryGetUri"])
        return outcomes

    outcomes = serve_app(rlm_env, body)
    assert outcomes["fair"]["runtimeStatus"] == "Completed" and outcomes["fair"]["output"]["answer"] == "2"
    for name, problem in {"wide": "max_parallel", "deep": "beyond max_depth"}.items():
        assert outcomes[name]["runtimeStatus"] == "Failed"
        assert problem in str(outcomes[name]["output"]) and "RlmTask" in str(outcomes[name]["output"])
    assert len(model_server.calls) == 2, "the refused starts made no model call"
