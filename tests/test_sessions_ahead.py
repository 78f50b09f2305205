"""Copilot sessions opened ahead of a call: claimed once by the call with the same model and
system prompt, closed when nobody claims them in time, never more than the limit waiting."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shared import llm
from shared.config import Settings
from shared.llm import CopilotModel
from shared.sessions_ahead import SessionsAhead
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import filler_corpus, repl, run_query

pytestmark = pytest.mark.timeout(120)
SYSTEM = "You answer from the corpus."


def sessions(ttl: float = 60.0, limit: int = 8) -> tuple[SessionsAhead[str], list[str]]:
    closed: list[str] = []
    return SessionsAhead(closed.append, ttl=ttl, limit=limit), closed


def opener(name: str) -> Any:
    async def opening() -> str:
        await asyncio.sleep(0.01)
        return name

    return lambda: opening()


def test_each_session_is_claimed_once_by_its_key_in_the_order_opened() -> None:
    async def body() -> list[Any]:
        ahead, closed = sessions()
        assert ahead.open(("m", "same first prompt"), opener("a")) and ahead.open(("m", "same first prompt"), opener("b"))
        ahead.open(("m", "other"), opener("c"))
        claimed = [ahead.claim(("m", "same first prompt")), ahead.claim(("m", "same first prompt")), ahead.claim(("m", "same first prompt"))]
        assert claimed[2] is None and ahead.claim(("other-model", "other")) is None
        opened = [await task for task in claimed[:2] if task is not None]
        await ahead.close_all()
        return [opened, closed, len(ahead)]

    assert asyncio.run(body()) == [["a", "b"], ["c"], 0]


def test_an_unclaimed_session_closes_after_its_time_and_the_limit_holds() -> None:
    async def body() -> list[Any]:
        ahead, closed = sessions(ttl=0.1, limit=2)
        opened = [ahead.open(("m", f"p{i}"), opener(f"s{i}")) for i in range(3)]
        await asyncio.sleep(0.3)
        return [opened, sorted(closed), len(ahead), ahead.claim(("m", "p0"))]

    assert asyncio.run(body()) == [[True, True, False], ["s0", "s1"], 0, None]


def answer(request: ScriptedRequest) -> str:
    return f"system had {len(request.system)} characters"


@pytest.mark.parametrize("model_server", [answer], indirect=True)
def test_the_call_finds_its_session_open_and_sends_the_same_request(model_env: Settings, model_server: ModelServer) -> None:
    async def body() -> tuple[str, int, int]:
        model = CopilotModel(model_env)
        try:
            model.open_ahead(model="test-model", system=SYSTEM)
            await asyncio.sleep(0)
            waiting = len(model._ahead)
            reply = await model.complete(model="test-model", system=SYSTEM, prompt="go")
            return reply.text, waiting, len(model._ahead)
        finally:
            await model.aclose()

    text, waiting, left = asyncio.run(body())
    assert (waiting, left) == (1, 0)
    assert text == f"system had {len(SYSTEM)} characters" and model_server.calls[0].request.system == SYSTEM


def test_a_session_nobody_claims_is_deleted_in_the_cli(
    model_env: Settings, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llm, "AHEAD_TTL_SECONDS", 1.0)

    async def body() -> tuple[bool, bool]:
        model = CopilotModel(model_env)
        try:
            model.open_ahead(model="test-model", system=SYSTEM)
            [waiting] = model._ahead._waiting[("test-model", SYSTEM)]
            _, session = await waiting.opening
            folder = Path(model_env.copilot_home or "") / "session-state" / session.session_id  # the CLI's own record of it
            opened = folder.is_dir()
            for _ in range(100):
                await asyncio.sleep(0.1)
                if not model._ahead and not model._cleanups:
                    break
            return opened, folder.exists()
        finally:
            await model.aclose()

    assert asyncio.run(body()) == (True, False)  # it was open, then it was deleted
    assert not model_server.calls


def test_a_query_claims_the_session_its_open_step_opened(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(repl('Final = str(len(context))'))
    waiting: list[int] = []

    def count(host: Any, root: str) -> None:
        waiting.extend(len(m._ahead) for per_loop in llm._models.values() for m in per_loop.values())

    status, _ = asyncio.run(run_query(rlm_env, question="How long?", corpus=filler_corpus(3000), on_host=count))
    assert str(status.runtime_status) == "Completed", status.output
    assert waiting == [0]  # opened by open_session, claimed by the first generate_step
