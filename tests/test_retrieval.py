"""The retrieval baselines end to end through the embedded host: real indexes (SQLite FTS5,
vectors from the scripted server's hashed embeddings), the real Copilot CLI, and a script
that can only answer from the passages a baseline put in its prompt."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rlm_activities import services
from shared.trace import trace_tree
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.retrieval import (
    NEEDLE_TITLE,
    answer_from_passages,
    is_answer,
    is_rewrite,
    needle_documents,
    passage_titles,
    run_strategy,
)

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("strategy", ["keyword", "vector", "hybrid", "agentic"])
def test_each_baseline_retrieves_the_needle_and_answers_from_it(rlm_env: Path, model_server: ModelServer, strategy: str) -> None:
    def script(request: ScriptedRequest) -> str:
        if is_rewrite(request):
            return "ANSWER"
        assert is_answer(request), request.system
        return answer_from_passages(request)

    model_server.set_script(script)
    documents = needle_documents()
    status, _ = asyncio.run(
        run_strategy(
            rlm_env, strategy, question="What is the vault's secret code?", documents=documents, instance_id=f"needle-{strategy}"
        )
    )
    assert status.runtime_status == "Completed", status.output
    result = status.output
    assert result["answer"].startswith("The secret code is 4417")
    assert {"title": NEEDLE_TITLE, "document_id": "needle"} in result["sources"]
    assert len(result["sources"]) <= services.settings().retrieval_top_k
    answers = [c for c in model_server.calls if is_answer(c.request)]
    assert len(answers) == 1 and passage_titles(answers[0].request)[0] == NEEDLE_TITLE  # ranked first
    tree = trace_tree(services.traces(), f"needle-{strategy}")
    assert tree is not None and tree.meta.strategy == strategy
    kinds = [s.kind for s in tree.steps]
    assert kinds == (["index", "retrieve", "rewrite", "answer"] if strategy == "agentic" else ["index", "retrieve", "answer"])
    retrieve = next(s for s in tree.steps if s.kind == "retrieve")
    assert retrieve.retrieval.hits[0].title == NEEDLE_TITLE and retrieve.retrieval.query == "What is the vault's secret code?"
    assert result["usage"]["0"]["model_calls"] == len(model_server.calls)
    embeds = model_server.embedding_calls
    if strategy == "keyword":
        assert embeds == [] and "embedding" not in result["usage"]
    else:
        assert result["usage"]["embedding"]["model_calls"] == 1  # the question, once
        assert embeds[-1].inputs == ["What is the vault's secret code?"]


def test_indexes_are_built_once_per_corpus_and_reused(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(lambda r: "ANSWER" if is_rewrite(r) else answer_from_passages(r))
    documents = needle_documents()
    question = "What is the vault's secret code?"
    first, _ = asyncio.run(run_strategy(rlm_env, "hybrid", question=question, documents=documents, instance_id="reuse-1"))
    store = services.store()
    corpus_id = first.input["corpus_id"]
    indexes = services.retrieval().indexes
    keys = [indexes.passages_key(corpus_id), indexes.vectors_key(corpus_id)]
    built_at = [store.local_path(store.containers.corpora, k).stat().st_mtime_ns for k in keys]
    build_inputs = sum(len(c.inputs) for c in model_server.embedding_calls[:-1])
    passages = indexes.passage_index(corpus_id).count()
    assert build_inputs == passages > len(documents)  # every passage embedded once, in batches

    second, _ = asyncio.run(run_strategy(rlm_env, "vector", question=question, documents=documents, instance_id="reuse-2"))
    third, _ = asyncio.run(run_strategy(rlm_env, "keyword", question=question, documents=documents, instance_id="reuse-3"))
    assert [s.runtime_status for s in (first, second, third)] == ["Completed"] * 3
    assert second.input["corpus_id"] == third.input["corpus_id"] == corpus_id
    assert [store.local_path(store.containers.corpora, k).stat().st_mtime_ns for k in keys] == built_at
    calls = model_server.embedding_calls
    assert sum(len(c.inputs) for c in calls) == build_inputs + 2  # then only the questions of runs 1 and 2
    index_steps = [trace_tree(services.traces(), i).steps[0] for i in ("reuse-1", "reuse-2", "reuse-3")]
    assert [(s.kind, s.retrieval.built, s.retrieval.reused) for s in index_steps] == [
        ("index", ["keyword", "vector"], []),
        ("index", [], ["keyword", "vector"]),
        ("index", [], ["keyword"]),
    ]
    assert first.output["usage"]["index"]["model_calls"] >= 1 and "index" not in second.output["usage"]


def test_agentic_rewrites_a_query_that_missed_and_finds_the_passage(rlm_env: Path, model_server: ModelServer) -> None:
    def script(request: ScriptedRequest) -> str:
        if is_rewrite(request):
            return "ANSWER" if "secret code is" in request.prompt else "The vault is not among these.\nSEARCH: vault secret code"
        return answer_from_passages(request)

    model_server.set_script(script)
    documents = needle_documents()
    question = "How do I get into our strongroom?"  # no word of the needle
    hybrid, _ = asyncio.run(run_strategy(rlm_env, "hybrid", question=question, documents=documents, instance_id="miss-hybrid"))
    agentic, _ = asyncio.run(run_strategy(rlm_env, "agentic", question=question, documents=documents, instance_id="miss-agentic"))
    assert hybrid.output["answer"] == "The passages do not say."
    assert agentic.output["answer"].startswith("The secret code is 4417")
    assert agentic.output["iterations"] == 2  # two searches
    steps = trace_tree(services.traces(), "miss-agentic").steps
    assert [s.kind for s in steps] == ["index", "retrieve", "rewrite", "retrieve", "rewrite", "answer"]
    assert [s.retrieval.query for s in steps if s.kind == "retrieve"] == [question, "vault secret code"]
    assert steps[3].retrieval.hits[0].title == NEEDLE_TITLE
    assert agentic.output["usage"]["0"]["model_calls"] == 3  # two rewrites and the answer


def test_a_baseline_that_cannot_answer_fails_with_a_recorded_error(rlm_env: Path, model_server: ModelServer) -> None:
    from tests.support.model_server import ScriptedError

    model_server.set_script(lambda _: ScriptedError(400, "the model refuses"))
    status, _ = asyncio.run(
        run_strategy(rlm_env, "keyword", question="What is the code?", documents=needle_documents(8), instance_id="refused-1")
    )
    assert status.runtime_status == "Failed"
    result = services.traces().result("refused-1", "refused-1")
    assert result is not None and result.failed and "the model refuses" in (result.error or "")


def test_a_baseline_runs_in_process_as_a_library(rlm_env: Path, model_server: ModelServer) -> None:
    from shared.config import Settings
    from shared.llm import close_models
    from shared.models import QueryRequest
    from shared.retrieval.loop import run_strategy_local
    from shared.retrieval.steps import RetrievalParts
    from shared.steps import Parts

    model_server.set_script(answer_from_passages)
    parts = RetrievalParts.from_parts(Parts.from_settings(Settings()))
    request = QueryRequest(question="What is the vault's secret code?", documents=needle_documents(12))

    async def run():
        try:
            return await run_strategy_local(request, "hybrid", parts, instance_id="library-1")
        finally:
            await close_models()

    result = asyncio.run(run())
    assert result.answer.startswith("The secret code is 4417") and result.sources[0].title == NEEDLE_TITLE
    assert [s.kind for s in parts.traces.steps("library-1", "library-1")] == ["index", "retrieve", "answer"]
