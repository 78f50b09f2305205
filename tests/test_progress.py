"""The live progress a query reports (custom status): the step running, the first line of the
code a cell runs, elapsed time, cost so far and the trace id; kept small."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from shared.config import Settings
from shared.llm import close_models
from shared.loop import run_local
from shared.models import QueryRequest
from shared.step_models import Progress
from shared.steps import Parts, code_preview
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import iteration_of, repl

pytestmark = pytest.mark.timeout(300)


def test_progress_names_the_running_step_its_code_and_the_trace(
    model_env: Settings, tmp_path: Path, model_server: ModelServer
) -> None:
    def script(request: ScriptedRequest) -> str:
        if iteration_of(request) == 1:
            return repl("# look first\nfound = context.count('apple')\nprint(found)")
        return repl("Final = str(found)")

    model_server.set_script(script)
    parts = Parts.from_settings(model_env.model_copy(update={"data_dir": tmp_path / "data"}))
    seen: list[Progress] = []

    async def main():
        try:
            request = QueryRequest(question="How many apples?", corpus="apple apple pear")
            return await run_local(request, parts, instance_id="progress-1", on_progress=lambda _, p: seen.append(p))
        finally:
            await close_models()

    result = asyncio.run(main())
    assert result.answer == "2"
    running = [(p.phase, p.step, p.code) for p in seen]
    assert ("generating", 2, None) in running
    assert ("executing", 3, "found = context.count('apple')") in running
    assert ("executing", 5, "Final = str(found)") in running
    assert all(p.trace_id == result.trace_id for p in seen) and result.trace_id
    assert [p.elapsed_seconds for p in seen] == sorted(p.elapsed_seconds for p in seen)
    assert all(p.started_at == seen[0].started_at for p in seen)
    assert seen[-1].phase == "done" and seen[-1].cost is None  # no price table: nothing to cost
    assert max(len(json.dumps(p.model_dump())) for p in seen) < 2048


def test_code_preview_is_the_first_line_that_says_something() -> None:
    assert code_preview("\n# a comment\n   \n  x = 1\ny = 2") == "x = 1"
    assert code_preview("# only comments") is None and code_preview(None) is None
    long = code_preview("z = '" + "a" * 500 + "'")
    assert long is not None and len(long) == 120 and long.endswith("…")
