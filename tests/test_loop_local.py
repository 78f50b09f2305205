"""The RLM loop without Durable: `shared.loop.run_local` through the real Copilot CLI,
the scripted model and the local sandbox."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from shared.config import Settings
from shared.llm import close_models
from shared.loop import run_local
from shared.models import QueryRequest, QueryResult
from shared.step_models import Progress
from shared.steps import Parts
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import filler_corpus, is_leaf, question_of, repl

pytestmark = pytest.mark.timeout(300)


def answer(settings: Settings, tmp_path: Path, request: QueryRequest, progress: list | None = None) -> QueryResult:
    parts = Parts.from_settings(settings.model_copy(update={"data_dir": tmp_path / "data"}))

    async def main() -> QueryResult:
        try:
            return await run_local(request, parts, instance_id="local-1",
                                   on_progress=lambda iid, p: progress.append((iid, p)) if progress is not None else None)
        finally:
            await close_models()

    return asyncio.run(main())


def test_needle_in_a_10mb_corpus_without_durable(
    model_env: Settings, tmp_path: Path, model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rlm.steps")
    needle = "OKAPI-9310"
    model_server.set_script(repl('import re\nFinal = re.search(r"secret code is (\\S+)\\.", context).group(1)'))
    corpus = filler_corpus(10_000_000, needle=needle)
    progress: list[tuple[str, Progress]] = []
    result = answer(model_env, tmp_path, QueryRequest(question="What is the secret code?", corpus=corpus), progress)
    assert result.answer == needle
    assert result.iterations == 1 and not result.forced and not result.failed
    assert len(model_server.calls) == 1
    assert [p.phase for _, p in progress][-1] == "done"
    assert "finish instance=local-1 outcome=final iterations=1" in caplog.text  # what operators search for


def test_batch_of_eight_sub_queries_without_durable(model_env: Settings, tmp_path: Path, model_server: ModelServer) -> None:
    barrier = threading.Barrier(8, timeout=60)

    def script(request: ScriptedRequest):
        if question_of(request) == "total":
            return repl(
                "parts = context.split('\\n\\n## ')\n"
                "Final = str(sum(int(a) for a in rlm_query_batch([('count x', p) for p in parts])))"
            )
        assert not is_leaf(request)
        barrier.wait()
        return repl("Final = str(context.count('x'))")

    model_server.set_script(script)
    documents = [{"title": f"part {i}", "content": "x" * i} for i in range(1, 9)]
    result = answer(model_env, tmp_path, QueryRequest(question="total", documents=documents, options={"max_depth": 1}))
    assert result.answer == str(sum(range(1, 9)))
    assert result.sub_queries == 8
    assert not model_server.script_failures
