"""Azure AI Search serving keyword, vector and hybrid retrieval: the real
`azure-search-documents` client, keyless through a managed-identity endpoint, against a
loopback server speaking the service's REST shape."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_activities import services
from shared.trace import trace_tree
from tests.support.identity_server import IdentityServer
from tests.support.model_server import ModelServer
from tests.support.retrieval import NEEDLE_TITLE, answer_from_passages, needle_documents, run_strategy
from tests.support.search_server import SearchServer

pytestmark = pytest.mark.timeout(300)
TOKEN = "search-token"


@pytest.fixture
def search(rlm_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SearchServer, IdentityServer]]:
    with IdentityServer(token=TOKEN) as identity, SearchServer(token=TOKEN) as server:
        for name, value in identity.environment.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AZURE_SEARCH_ENDPOINT", server.url)
        monkeypatch.setenv("SEARCH_INDEX_NAME", "rlm-test-passages")
        services.reset()
        yield server, identity
        services.reset()


def test_keyword_vector_and_hybrid_search_run_on_azure_ai_search(
    rlm_env: Path, model_server: ModelServer, search: tuple[SearchServer, IdentityServer]
) -> None:
    server, identity = search
    model_server.set_script(answer_from_passages)
    documents = needle_documents()
    question = "What is the vault's secret code?"
    results = {}
    for strategy in ("keyword", "hybrid", "vector"):
        status, _ = asyncio.run(
            run_strategy(rlm_env, strategy, question=question, documents=documents, instance_id=f"search-{strategy}")
        )
        assert status.runtime_status == "Completed", status.output
        results[strategy] = status.output
    for result in results.values():
        assert result["answer"].startswith("The secret code is 4417")
        assert {"title": NEEDLE_TITLE, "document_id": "needle"} in result["sources"]

    corpus_id = next(iter(server.documents("rlm-test-passages").values()))["corpus_id"]
    index = server.index("rlm-test-passages")
    assert index is not None and {f["name"] for f in index["fields"]} >= {"id", "corpus_id", "passage", "text", "vector"}
    vector_field = next(f for f in index["fields"] if f["name"] == "vector")
    assert vector_field["dimensions"] == 1024  # the embedding model's size
    passages = services.retrieval().indexes.passage_index(corpus_id).count()
    assert len(server.documents("rlm-test-passages")) == passages

    requests = server.requests
    assert all(r.api_version for r in requests)
    assert [r.method for r in requests if "docs/search.index" in r.path] == ["POST"]  # uploaded once, reused after
    searches = [r.body for r in requests if r.path.endswith("search.post.search")]
    assert len(searches) == 3 and all(s["filter"] == f"corpus_id eq '{corpus_id}'" for s in searches)
    keyword, hybrid, vector = searches
    assert hybrid["search"] == question and hybrid["vectorQueries"][0]["fields"] == "vector"
    assert keyword["search"] == question and not keyword.get("vectorQueries")
    assert not vector.get("search") and len(vector["vectorQueries"][0]["vector"]) == 1024
    assert set(identity.resources) == {"https://search.azure.com"}  # keyless: a token for the search scope

    assert trace_tree(services.traces(), "search-keyword").steps[0].retrieval.built == ["keyword", "vector", "azure-search"]
    steps = trace_tree(services.traces(), "search-hybrid").steps
    assert trace_tree(services.traces(), "search-vector").steps[0].retrieval.reused == ["keyword", "vector", "azure-search"]
    assert steps[1].retrieval.hits[0].title == NEEDLE_TITLE


def test_a_plain_http_search_endpoint_off_loopback_is_refused() -> None:
    from shared.retrieval.azure_search import AzureSearch

    with pytest.raises(ValueError, match="must be https"):
        AzureSearch("http://search.example.net", "idx")
