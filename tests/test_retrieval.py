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
