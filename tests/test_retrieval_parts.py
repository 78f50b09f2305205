"""The baselines' parts on their own: passages, the FTS5 keyword index, vector search,
rank fusion, query rewriting replies, and the embeddings client against the scripted
server (OpenAI routes with a key, Azure routes keyless through a managed identity)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import Settings
from shared.retrieval.embeddings import EmbeddingClient, EmbeddingError
from shared.retrieval.fusion import reciprocal_rank_fusion
from shared.retrieval.keyword import PassageIndex, build_passage_index, match_expression
from shared.retrieval.passages import section_texts, split_passages
from shared.retrieval.prompts import parse_rewrite
from shared.retrieval.vector import nearest
from tests.support.identity_server import IdentityServer
from tests.support.model_server import ModelServer, ScriptedError

CORPUS = "preamble words\n\n## Harbor\nThe harbor gauge reads 4.2 metres.\n\n## Ridge\n" + "Snow on the ridge road. " * 200


def test_passages_cover_every_section_and_never_span_two() -> None:
    passages = split_passages(CORPUS, {"Harbor": "d1", "Ridge": "d2"}, max_chars=500)
    assert passages[0].title.startswith("characters 0-") and passages[0].document_id is None
    assert passages[1].title == "Harbor" and passages[1].text == "The harbor gauge reads 4.2 metres."
    ridge = passages[2:]
    assert len(ridge) >= 9 and all(p.title == "Ridge" and p.document_id == "d2" and len(p.text) <= 500 for p in ridge)
    assert all(p.text.endswith(".") for p in ridge)  # cut at sentence ends, never mid-word
    assert [p.id for p in passages] == list(range(len(passages)))
    assert all(CORPUS[p.start : p.end] == p.text for p in passages)
    assert section_texts(CORPUS, ["Harbor", "Missing"]) == {"Harbor": "The harbor gauge reads 4.2 metres."}


@given(st.text(alphabet=st.sampled_from("ab \n#."), max_size=400), st.integers(min_value=20, max_value=120))
def test_passages_keep_all_text_in_order(text: str, max_chars: int) -> None:
    passages = split_passages(text, {}, max_chars)
    assert all(0 < len(p.text) <= max_chars for p in passages)
    assert all(a.end <= b.start for a, b in zip(passages, passages[1:], strict=False))
    covered = "".join(p.text for p in passages)
    assert "".join(covered.split()) == "".join("".join(body.split()) for body in _bodies(text))


def _bodies(text: str) -> list[str]:
    from shared.retrieval.passages import sections

    return [text[start:end] for _, start, end in sections(text)]


def test_keyword_index_ranks_by_bm25_with_stemming(tmp_path: Path) -> None:
    passages = split_passages(CORPUS + "\n\n## Gauges\nGauging gauges: every gauge gauged twice.", {}, 500)
    path = tmp_path / "p.sqlite"
    assert build_passage_index(passages, path) == len(passages)
    index = PassageIndex(path)
    ranked = index.search("Which gauge reads metres?", 3)
    assert [passages[i].title for i, _ in ranked][:2] == ["Harbor", "Gauges"]
    assert ranked[0][1] > ranked[1][1] > 0  # higher is better
    assert index.search("the of and", 3) == []  # only stop words
    assert index.search('"NEAR(x" OR * ) AND', 3) == []  # FTS syntax in a question is just words
    assert [p.title for p in index.passages([1, 0])] == ["Harbor", passages[0].title]


def test_match_expressions_quote_every_word() -> None:
    assert match_expression('What is "json.dumps" NOT doing?') == '"json" OR "dumps" OR "not" OR "doing"'
    assert match_expression("?!") is None


def test_nearest_is_cosine_top_k() -> None:
    vectors = np.eye(4, dtype=np.float32)
    query = np.array([0.1, 0.9, 0.4, 0.0], dtype=np.float32)
    assert [i for i, _ in nearest(vectors, query / np.linalg.norm(query), 2)] == [1, 2]
    with pytest.raises(ValueError, match="rebuild"):
        nearest(vectors, np.ones(3, dtype=np.float32), 1)


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], limit=3)
    assert [i for i, _ in fused] == [1, 3, 2]
    assert fused[0][1] == round(1 / 61 + 1 / 62, 6)


def test_rewrite_replies() -> None:
    assert parse_rewrite("Not enough.\nSEARCH: harbor gauge height", ["q"]) == "harbor gauge height"
    assert parse_rewrite("**SEARCH:** `storm log`", ["q"]) == "storm log"
    assert parse_rewrite("**SEARCH**: storm log", ["q"]) == "storm log"
    assert parse_rewrite("Search results look thin.\nANSWER", ["q"]) is None
    assert parse_rewrite("ANSWER", ["q"]) is None
    assert parse_rewrite("SEARCH: Q", ["q"]) is None  # a repeated query ends the search


def _settings(**values: str) -> Settings:
    return Settings.model_validate(values)


def test_openai_embeddings_with_a_key(model_server: ModelServer) -> None:
    client = EmbeddingClient(
        _settings(
            MODEL_PROVIDER="openai", MODEL_BASE_URL=model_server.url + "/v1", MODEL_API_KEY="k", EMBEDDING_MODEL="emb-small"
        )
    )
    texts = [f"passage number {n}" for n in range(130)]
    embedded = asyncio.run(client.embed(texts))
    assert embedded.vectors.shape == (130, 1024) and embedded.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(embedded.vectors, axis=1), 1.0)
    calls = model_server.embedding_calls
    assert sorted(len(c.inputs) for c in calls) == [2, 64, 64] and {c.path for c in calls} == {"/v1/embeddings"}
    assert {c.headers["authorization"] for c in calls} == {"Bearer k"} and {c.model for c in calls} == {"emb-small"}
    assert embedded.usage.model_calls == 3 and embedded.usage.prompt_tokens == 3 * 130


def test_azure_embeddings_are_keyless_through_the_managed_identity(
    model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with IdentityServer(token="entra-token") as identity:
        for name, value in identity.environment.items():
            monkeypatch.setenv(name, value)
        settings = _settings(MODEL_PROVIDER="azure", MODEL_BASE_URL=model_server.url, EMBEDDING_MODEL="text-embedding-3-small")
        asyncio.run(EmbeddingClient(settings).embed(["one"]))
        versioned = settings.model_copy(update={"azure_openai_api_version": "2024-10-21"})
        asyncio.run(EmbeddingClient(versioned).embed(["two"]))
        keyed = settings.model_copy(update={"model_api_key": "azure-key"})
        asyncio.run(EmbeddingClient(keyed).embed(["three"]))
    first, second, third = model_server.embedding_calls
    assert first.path == "/openai/v1/embeddings" and first.headers["authorization"] == "Bearer entra-token"
    assert second.path == "/openai/deployments/text-embedding-3-small/embeddings" and second.query == "api-version=2024-10-21"
    assert third.headers["api-key"] == "azure-key" and "authorization" not in third.headers
    assert set(identity.resources) == {"https://cognitiveservices.azure.com"}


def test_throttling_is_retried_after_the_time_the_server_asks(model_server: ModelServer) -> None:
    model_server.fail_embeddings(ScriptedError(429, "slow down"), ScriptedError(503, "busy"), retry_after=0.2)
    client = EmbeddingClient(_settings(MODEL_PROVIDER="openai", MODEL_BASE_URL=model_server.url, MODEL_API_KEY="k"))
    embedded = asyncio.run(client.embed(["storm"]))
    assert embedded.vectors.shape == (1, 1024) and len(model_server.embedding_calls) == 3


def test_a_refused_request_fails_at_once_and_says_where(model_server: ModelServer) -> None:
    model_server.fail_embeddings(ScriptedError(400, "unknown model"))
    client = EmbeddingClient(_settings(MODEL_PROVIDER="openai", MODEL_BASE_URL=model_server.url, MODEL_API_KEY="k"))
    with pytest.raises(EmbeddingError, match=r"HTTP 400.*unknown model") as failure:
        asyncio.run(client.embed(["storm"]))
    assert model_server.url in str(failure.value) and failure.value.status == 400


def test_an_unreachable_endpoint_fails_fast_and_names_the_url() -> None:
    client = EmbeddingClient(_settings(MODEL_PROVIDER="openai", MODEL_BASE_URL="http://127.0.0.1:9", MODEL_API_KEY="k"))
    with pytest.raises(EmbeddingError, match=r"http://127.0.0.1:9/embeddings is unreachable"):
        asyncio.run(client.embed(["storm"]))
