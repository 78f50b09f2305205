"""At most RLM_MAX_LIVE_SANDBOXES live sandboxes: the slot gate on its own (random trees whose
parents hold their slot while their children wait), then through the real Durable loop."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlm_activities import services
from shared.models import QueryResult
from shared.sandbox.base import SandboxError
from shared.sandbox.slots import SandboxSlots, TreeTooDeep
from tests.support.model_server import ModelServer, ScriptedError, ScriptedRequest
from tests.support.rlm import iteration_of, question_of, repl, run_query

pytestmark = pytest.mark.timeout(300)


async def run_tree(slots: SandboxSlots, rng: random.Random, node: str, tree: str, height: int, live: list[int]) -> int:
    """A session: take a slot, run its children at once while holding it, release. Returns sessions run."""
    for _ in range(rng.randrange(3)):
        await asyncio.sleep(0)
    await slots.acquire(node, tree, height)
    live[0] += 1
    live[1] = max(live[1], live[0])
    try:
        children = rng.randrange(4) if height > 0 else 0
        counts = await asyncio.gather(*(run_tree(slots, rng, f"{node}-1-{k}", tree, height - 1, live) for k in range(children)))
        await asyncio.sleep(0)
        return 1 + sum(counts)
    finally:
        live[0] -= 1
        slots.release(node)


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 6), roots=st.integers(1, 4), seed=st.integers(0, 10**6), data=st.data())
def test_random_trees_never_deadlock_and_never_exceed_the_limit(limit: int, roots: int, seed: int, data: st.DataObject) -> None:
    depths = [data.draw(st.integers(0, limit - 1)) for _ in range(roots)]
    slots = SandboxSlots(limit)
    live = [0, 0]

    async def main() -> list[int]:
        rng = random.Random(seed)
        work = [run_tree(slots, rng, f"root{r}", f"root{r}", depth, live) for r, depth in enumerate(depths)]
        return await asyncio.wait_for(asyncio.gather(*work), 30)  # a deadlock fails here

    sessions = asyncio.run(main())
    assert live[1] <= limit and slots.peak <= limit
    assert slots.held == 0 and slots.waiting == 0
    assert sum(sessions) >= roots


def test_a_tree_deeper_than_the_host_allows_is_refused_at_once() -> None:
    slots = SandboxSlots(3)
    with pytest.raises(TreeTooDeep, match="RLM_MAX_LIVE_SANDBOXES is 3"):
        slots.acquire_blocking("root", "root", 3)
    slots.acquire_blocking("root", "root", 2)
    assert slots.held == 1


def test_closing_a_tree_turns_its_waiters_away_and_a_cancelled_wait_holds_nothing() -> None:
    slots = SandboxSlots(2)
    slots.acquire_blocking("a", "a", 1)
    failures: list[BaseException] = []

    def blocked() -> None:
        try:
            slots.acquire_blocking("b", "b", 1)
        except SandboxError as exc:
            failures.append(exc)

    waiter = threading.Thread(target=blocked)
    waiter.start()

    async def cancelled_wait() -> None:
        task = asyncio.create_task(slots.acquire("c", "c", 1))
        while slots.waiting < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_wait())
    slots.cancel_tree("b", SandboxError("query b has ended"))
    waiter.join(30)
    assert [str(f) for f in failures] == ["query b has ended"]
    slots.release("a")
    assert slots.held == 0 and slots.waiting == 0


def sessions_left(tree: str) -> tuple[int, list[str], list[str]]:
    """Live sandboxes, session dirs and journals still on disk for a tree."""
    executor = services.parts().executor
    backend = executor.backend
    journals = [k for k in executor.store.list_keys(executor.store.containers.payloads, "sessions/") if k.split("/")[1].startswith(tree)]
    return backend.live_sessions, [p.name for p in backend.root.iterdir()], journals


def halves_script(request: ScriptedRequest) -> str:
    """Root: split the corpus in halves; 'half': split again into quarters; 'count': count the x's."""
    question = question_of(request)
    split = "parts = context.split('\\n\\n## ')\nhalf = len(parts) // 2\nchunks = ['\\n\\n## '.join(parts[:half]), '\\n\\n## '.join(parts[half:])]\n"
    if question == "How many x?":
        return repl(split + "Final = str(sum(int(a) for a in rlm_query_batch([('half', c) for c in chunks])))")
    if question == "half":
        return repl(split + "Final = str(sum(int(a) for a in rlm_query_batch([('count', c) for c in chunks])))")
    return repl("Final = str(context.count('x'))")


DOCUMENTS = [{"title": f"Shelf {i}", "content": "x" * (i + 1)} for i in range(8)]


def test_sub_queries_wait_in_their_wave_beyond_the_limit(rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two live sandboxes for a root and four children: the children take turns, nothing fails."""
    monkeypatch.setenv("RLM_MAX_LIVE_SANDBOXES", "2")
    monkeypatch.setenv("RLM_MAX_DEPTH", "1")
    services.reset()

    def script(request: ScriptedRequest) -> str:
        if question_of(request) == "How many x?":
            return repl("parts = context.split('\\n\\n## ')\nFinal = str(sum(int(a) for a in rlm_query_batch([('count', p) for p in parts[:4]])))")
        return repl("Final = str(context.count('x'))")

    model_server.set_script(script)
    status, _ = asyncio.run(run_query(rlm_env, question="How many x?", documents=DOCUMENTS, options={"max_depth": 1}, instance_id="limit-1"))
    assert str(status.runtime_status) == "Completed", status.output
    result = QueryResult.model_validate(status.output)
    assert result.answer == str(1 + 2 + 3 + 4) and result.sub_queries == 4
    executor = services.parts().executor
    assert executor.slots.peak == 2 and executor.backend.peak_sessions <= 2
    assert len(services.traces().metas("limit-1")) == 5  # five sessions ran, never more than two at once
    assert sessions_left("limit-1") == (0, [], [])  # the root's finish closed the whole tree


def test_parents_holding_slots_do_not_starve_their_children(rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three slots, a root, two children and four grandchildren: with a plain semaphore the root and
    both children would hold all three while every grandchild waited forever."""
    monkeypatch.setenv("RLM_MAX_LIVE_SANDBOXES", "3")
    services.reset()
    model_server.set_script(halves_script)
    status, _ = asyncio.run(run_query(rlm_env, question="How many x?", documents=DOCUMENTS, options={"max_depth": 2}, instance_id="deep-1"))
    assert str(status.runtime_status) == "Completed", status.output
    result = QueryResult.model_validate(status.output)
    assert result.answer == str(sum(range(1, 9))) and result.sub_queries == 6
    executor = services.parts().executor
    assert executor.slots.peak <= 3 and executor.backend.peak_sessions <= 3
    assert sessions_left("deep-1") == (0, [], [])


def test_a_query_deeper_than_the_limit_fails_with_a_clear_error(rlm_env: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_MAX_LIVE_SANDBOXES", "2")
    monkeypatch.setenv("RLM_MAX_DEPTH", "1")
    services.reset()
    model_server.set_script(halves_script)
    status, _ = asyncio.run(run_query(rlm_env, question="How many x?", documents=DOCUMENTS, options={"max_depth": 2}, instance_id="too-deep-1"))
    assert str(status.runtime_status) == "Failed"
    assert "RLM_MAX_LIVE_SANDBOXES is 2" in str(status.output)
    assert model_server.calls == []  # refused before any model call


def test_a_failed_query_leaves_no_sandbox(rlm_env: Path, model_server: ModelServer) -> None:
    """The root fans out, then its model fails: the query fails, and every sandbox of its tree is gone."""

    def script(request: ScriptedRequest) -> str | ScriptedError:
        if question_of(request) == "How many x?":
            if iteration_of(request) > 1:
                return ScriptedError(400, "scripted to fail")
            return repl("parts = context.split('\\n\\n## ')\nprint(rlm_query_batch([('count', p) for p in parts[:2]]))")
        return repl("Final = str(context.count('x'))")

    model_server.set_script(script)
    status, _ = asyncio.run(run_query(rlm_env, question="How many x?", documents=DOCUMENTS, options={"max_depth": 1}, instance_id="fails-1"))
    assert str(status.runtime_status) == "Failed"
    assert len(services.traces().metas("fails-1")) == 3
    assert sessions_left("fails-1") == (0, [], [])
