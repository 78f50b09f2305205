"""The scripted model server on its own, spoken to over plain HTTP."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.model_server import ModelServer, ScriptedError, ScriptedReply, ScriptedRequest, sequence

MESSAGES = [
    {"role": "system", "content": "You are an RLM step."},
    {"role": "user", "content": "<current_datetime>2026-01-01T00:00:00Z</current_datetime>\n\nfind the needle"},
]


def chat(server: ModelServer, path: str = "/chat/completions", **body: object) -> httpx.Response:
    payload = {"model": "m", "messages": MESSAGES, **body}
    return httpx.post(server.url + path, json=payload, timeout=10)


def by_role(request: ScriptedRequest) -> str:
    return "step" if "RLM step" in request.system else "leaf"


@pytest.mark.parametrize("model_server", [by_role], indirect=True)
def test_non_streaming_reply_with_usage(model_server: ModelServer) -> None:
    body = chat(model_server).json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "step"}
    assert body["usage"] == {
        "prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0},
    }  # fmt: skip
    [call] = model_server.calls
    assert call.request.prompt == "find the needle"
    assert call.request.system == "You are an RLM step."
    assert call.status == 200 and call.answered is not None and call.answered >= call.received


@pytest.mark.parametrize("model_server", ["several words of reply"], indirect=True)
def test_streaming_reply_with_usage_chunk(model_server: ModelServer) -> None:
    response = chat(model_server, "/v1/chat/completions", stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"] == "text/event-stream"
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "several words of reply"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


def test_streaming_without_usage_request_sends_no_usage(model_server: ModelServer) -> None:
    response = chat(model_server, stream=True)
    chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert all("usage" not in c for c in chunks)


def test_azure_routes_take_the_model_from_the_deployment(model_server: ModelServer) -> None:
    assert chat(model_server, "/openai/deployments/gpt-x/chat/completions?api-version=2024-10-21").status_code == 200
    assert chat(model_server, "/openai/v1/chat/completions").status_code == 200
    first, second = model_server.calls
    assert (first.request.model, first.request.query) == ("gpt-x", "api-version=2024-10-21")
    assert second.request.model == "m"


def test_scripted_errors_and_broken_scripts(model_server: ModelServer) -> None:
    model_server.set_script(sequence(ScriptedError(500, "overloaded"), "fine"))
    failed = chat(model_server)
    assert failed.status_code == 500 and failed.json()["error"]["message"] == "overloaded"
    assert chat(model_server).json()["choices"][0]["message"]["content"] == "fine"
    model_server.set_script(lambda request: request.body["missing"])
    assert chat(model_server).status_code == 400
    assert model_server.script_failures == ["KeyError('missing')"]
    assert [c.status for c in model_server.calls] == [500, 200, 400]


def test_models_listing_and_unknown_routes_are_logged(model_server: ModelServer) -> None:
    assert httpx.get(model_server.url + "/models").json() == {"object": "list", "data": []}
    assert httpx.post(model_server.url + "/completions", json={}).status_code == 404
    assert model_server.other_requests == [("GET", "/models"), ("POST", "/completions")]
    assert model_server.calls == []


def test_request_log_shows_overlap_of_concurrent_calls(model_server: ModelServer) -> None:
    model_server.set_latency(0.3)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: chat(model_server), range(4)))
    assert len(model_server.calls) == 4
    assert model_server.max_overlap() > 1


def test_sequential_calls_do_not_overlap(model_server: ModelServer) -> None:
    for _ in range(3):
        chat(model_server)
    assert model_server.max_overlap() == 1


def usage_of(server: ModelServer, messages: list[dict[str, str]], model: str = "m") -> dict[str, object]:
    return httpx.post(server.url + "/chat/completions", json={"model": model, "messages": messages}, timeout=10).json()["usage"]


def test_cached_tokens_are_the_prefix_shared_with_an_earlier_request_to_the_same_model(model_server: ModelServer) -> None:
    system = {"role": "system", "content": "one two three four"}
    assert usage_of(model_server, [system, {"role": "user", "content": "five six"}])["prompt_tokens_details"] == {"cached_tokens": 0}
    longer = [{"role": "system", "content": "one two three four five"}, {"role": "user", "content": "seven"}]
    assert usage_of(model_server, longer)["prompt_tokens_details"] == {"cached_tokens": 4}  # the words of the old system prompt
    assert usage_of(model_server, [*longer, {"role": "user", "content": "eight"}])["prompt_tokens_details"] == {"cached_tokens": 6}
    assert usage_of(model_server, longer, model="other")["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage_of(model_server, [{"role": "user", "content": "one two"}])["prompt_tokens_details"] == {"cached_tokens": 0}


def test_failed_requests_leave_nothing_in_the_cache(model_server: ModelServer) -> None:
    model_server.set_script(sequence(ScriptedError(500), "ok"))
    messages = [{"role": "system", "content": "alpha beta"}]
    assert httpx.post(model_server.url + "/chat/completions", json={"model": "m", "messages": messages}).status_code == 500
    assert usage_of(model_server, messages)["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage_of(model_server, messages)["prompt_tokens_details"] == {"cached_tokens": 2}


@pytest.mark.parametrize("model_server", [lambda _: ScriptedReply("two words", reasoning_tokens=5)], indirect=True)
def test_reasoning_tokens_count_in_the_completion(model_server: ModelServer) -> None:
    usage = usage_of(model_server, MESSAGES)
    assert usage["completion_tokens"] == 7 and usage["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert model_server.calls[0].reply == "two words" and model_server.calls[0].usage == usage


def test_the_raw_body_is_recorded(model_server: ModelServer) -> None:
    chat(model_server)
    [call] = model_server.calls
    assert json.loads(call.request.raw) == call.request.body
@pytest.mark.parametrize("path", ["/embeddings", "/v1/embeddings", "/openai/v1/embeddings", "/openai/deployments/emb/embeddings"])
def test_embeddings_are_deterministic_hashed_bags_of_words(model_server: ModelServer, path: str) -> None:
    texts = ["The secret code of the harbor is 4417.", "Wind and snow on the ridge road.", "the harbor secret code?"]
    first = httpx.post(model_server.url + path, json={"model": "emb", "input": texts}, timeout=10).json()
    again = httpx.post(model_server.url + path, json={"model": "emb", "input": texts[0]}, timeout=10).json()
    vectors = [d["embedding"] for d in first["data"]]
    assert [d["index"] for d in first["data"]] == [0, 1, 2] and len(vectors[0]) == 1024
    assert again["data"][0]["embedding"] == vectors[0]
    cosine = [sum(a * b for a, b in zip(vectors[2], v, strict=True)) for v in vectors[:2]]
    assert cosine[0] > 0.5 > cosine[1]  # the question is nearest to the passage naming it
    assert first["usage"]["prompt_tokens"] == sum(len(t.split()) for t in texts)
    assert [c.model for c in model_server.embedding_calls] == ["emb", "emb"]
    assert [len(c.inputs) for c in model_server.embedding_calls] == [3, 1]
    assert not model_server.calls  # embeddings are not chat calls


def test_embeddings_reject_empty_input(model_server: ModelServer) -> None:
    response = httpx.post(model_server.url + "/embeddings", json={"model": "emb", "input": []}, timeout=10)
    assert response.status_code == 400 and "input" in response.json()["error"]["message"]
