"""A query's first model call needs only its corpus's size, so it goes out beside the
session's opening: here, while the sandbox still waits for a free slot on the host."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from rlm_activities import services
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import filler_corpus, repl, run_query

pytestmark = pytest.mark.timeout(180)
BLOCKERS = ("blocker-a", "blocker-b", "blocker-c")


def test_the_first_call_goes_out_while_the_sandbox_waits_for_a_slot(
    rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLM_MAX_LIVE_SANDBOXES", "3")
    services.reset()
    slots = services.parts().executor.slots
    for blocker in BLOCKERS:  # every slot taken, as by other queries' sandboxes
        slots.acquire_blocking(blocker, blocker, 0)
    waiting_at_first_call: list[int] = []

    def free_the_slots() -> None:
        for blocker in BLOCKERS:
            slots.release(blocker)

    def script(request: ScriptedRequest) -> str:
        if not waiting_at_first_call:
            waiting_at_first_call.append(slots.waiting)
            free_the_slots()
        return repl("Final = str(len(context))")

    model_server.set_script(script)
    corpus = filler_corpus(3000)
    fallback = threading.Timer(60, free_the_slots)  # a loop that waited for the sandbox first still ends, and fails below
    fallback.start()
    try:
        status, _ = asyncio.run(run_query(rlm_env, question="How long?", corpus=corpus))
    finally:
        fallback.cancel()
    assert str(status.runtime_status) == "Completed", status.output
    assert status.output["answer"] == str(len(corpus))
    assert waiting_at_first_call == [1]  # the query's sandbox was still waiting when its first call came
