"""A long query continues as new every few iterations, so each episode replays a short history.
Nothing a user sees changes: the answer, the REPL's state, the transcript the model is sent, the
trace's step numbers, usage, sources and the ids of sub-queries started in a later generation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rlm_activities import services
from shared.models import QueryResult
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import filler_corpus, iteration_of, question_of, repl, run_query, transcript_of

pytestmark = pytest.mark.timeout(300)
ITERATIONS = 20
FAN_OUT_AT = 18


def long_query(request: ScriptedRequest) -> str:
    """Each root cell keeps a variable; one cell cites a section, a late one fans out, the last adds up."""
    if question_of(request).startswith("child"):
        return repl(f"Final = {question_of(request)[-1].upper()!r}")
    n = iteration_of(request)
    if n == ITERATIONS:
        return repl(f"Final = str(sum(globals()[f'v{{i}}'] for i in range(1, {n}))) + ' ' + ','.join(answers)")
    code = f"v{n} = {n}\nprint('kept', {n})"
    if n == 2:
        code += "\nused_sections = ['Document 1']"
    if n == FAN_OUT_AT:
        code += "\nanswers = rlm_query_batch(['child a', 'child b'])"
    return repl(code)


@pytest.mark.parametrize("model_server", [long_query], indirect=True)
def test_a_long_query_continues_as_new_and_nothing_else_changes(rlm_env: Path, model_server: ModelServer) -> None:
    seen: dict[str, Any] = {}

    def capture(host: Any, root: str) -> None:
        seen["history"] = host.history(root)
        seen["children"] = host.children(root)

    status, _ = asyncio.run(
        run_query(rlm_env, question="Add them up", corpus=filler_corpus(5000),
                  options={"max_iterations": ITERATIONS, "max_depth": 1}, on_host=capture)
    )  # fmt: skip
    assert str(status.runtime_status) == "Completed", status.output
    result = QueryResult.model_validate(status.output)
    assert result.answer == f"{sum(range(1, ITERATIONS))} A,B"  # the REPL kept every variable across generations
    assert result.iterations == ITERATIONS and not result.forced
    assert [s.title for s in result.sources] == ["Document 1"]  # cited in the first generation
    assert result.usage["0"].model_calls == ITERATIONS and result.usage["1"].model_calls == 2
    assert result.sub_queries == 2 and status.custom_status["sub_queries_done"] == 2

    execution_started = 0
    started = json.loads(next(e["Input"] for e in seen["history"] if e["EventType"] == execution_started))
    assert started["state"]["iteration"] >= 8  # this generation began after earlier ones ended
    assert len(seen["history"]) < 4 * ITERATIONS  # one history of all 20 iterations would hold over 160 events
    assert sorted(seen["children"]) == [f"query-1-{FAN_OUT_AT}-0", f"query-1-{FAN_OUT_AT}-1"]

    steps = services.traces().steps("query-1", "query-1")
    numbers = [s.step for s in steps]
    assert numbers == sorted(set(numbers)) and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert [s.iteration for s in steps if s.kind == "generate"] == list(range(1, ITERATIONS + 1))
    last = [c.request for c in model_server.calls if iteration_of(c.request) == ITERATIONS]
    assert len(last) == 1
    assert all(f"kept {n}\n" in transcript_of(last[0]) for n in range(1, ITERATIONS))  # every earlier turn was sent
