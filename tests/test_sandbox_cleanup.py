"""A query tree's sandboxes end with it: on cancel (through the HTTP route of a live host),
when its root finishes, for local sandboxes and ACA sessions alike, and when a session
nobody closes has been idle too long."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from rlm_activities import services
from rlm_activities.batch_models import query_instance_id
from shared.sandbox import CellLimits, SandboxExecutor
from shared.sandbox.aca import ACABackend
from shared.sandbox.base import SandboxError
from shared.sandbox.local import LocalBackend
from shared.storage import FileStore
from tests.support.aca_server import ACAServer
from tests.support.model_server import ModelServer, Script, ScriptedRequest
from tests.support.rlm import iteration_of, question_of, repl
from tests.test_http_api import poll, serve_app
from tests.test_sandbox_isolation import alive, wait_for

pytestmark = pytest.mark.timeout(300)
LIMITS = CellLimits(timeout_seconds=30, memory_mb=1024, output_max_chars=10_000)
CORPUS = "## One\nfirst\n\n## Two\nsecond\n"


def journals(store: FileStore, tree: str) -> list[str]:
    return [k for k in store.list_keys(store.containers.payloads, "sessions/") if k.split("/")[1].startswith(tree)]


def fan_out_held(both_asking: threading.Barrier, release: threading.Event, *, with_processes: bool) -> Script:
    """The root asks for two sub-queries, whose model calls wait, once both ask, until `release`;
    left alone, each then goes on to another iteration. With processes, every session of the
    tree first starts a `sleep` and the sub-queries write a file."""
    keep = "import subprocess\nkeep = subprocess.Popen(['sleep', '600'])\n" if with_processes else ""

    def script(request: ScriptedRequest) -> str:
        if question_of(request) == "fan out":
            return repl(keep + "Final = ' '.join(rlm_query_batch(['slow a', 'slow b']))")
        if with_processes and iteration_of(request) == 1:
            return repl(keep + "open('scratch.txt', 'w').write('x')\nprint('started')")
        both_asking.wait()
        release.wait(60)
        return repl("print('still going')")

    return script


def test_cancel_leaves_no_process_and_no_file(rlm_env: Path, model_server: ModelServer) -> None:
    """Root and two sub-queries each hold a sandbox with a child process and a file when the root is cancelled."""
    both_asking = threading.Barrier(3, timeout=60)
    release = threading.Event()
    model_server.set_script(fan_out_held(both_asking, release, with_processes=True))
    seen: dict[str, object] = {}

    async def body(client: httpx.AsyncClient):
        started = (await client.post("/api/queries", json={"question": "fan out", "corpus": "## a\nb"})).json()
        root = started["id"]
        await asyncio.to_thread(both_asking.wait)
        backend = services.parts().executor.backend
        processes = {sid: backend.process(sid) for sid in (root, f"{root}-1-0", f"{root}-1-1")}
        assert all(p is not None and p.cgroup is not None for p in processes.values())
        seen["pids"] = {pid for p in processes.values() for pid in p.cgroup.pids()}  # type: ignore[union-attr]
        seen["dirs"] = [p.cwd for p in processes.values()] + [d for p in processes.values() for d in p.cgroup.dirs]  # type: ignore[union-attr]
        seen["sub_cancel"] = await client.post(f"/api/queries/{root}-1-0/cancel")
        seen["cancel"] = await client.post(f"/api/queries/{root}/cancel")
        seen["right_after"] = (backend.live_sessions, services.parts().executor.slots.held, journals(services.store(), root))
        release.set()
        for instance in (root, f"{root}-1-0", f"{root}-1-1"):
            assert (await poll(client, started["statusQueryGetUri"].replace(root, instance)))["runtimeStatus"] == "Terminated"
        seen["later"] = (backend.live_sessions, [p.name for p in backend.root.iterdir()])
        return root

    serve_app(rlm_env, body)
    sub_cancel, cancel = seen["sub_cancel"], seen["cancel"]
    assert sub_cancel.status_code == 409 and "only a root query" in sub_cancel.json()["error"]  # type: ignore[union-attr]
    assert cancel.status_code == 202 and cancel.json()["sub_queries"] == 2  # type: ignore[union-attr]
    assert len(seen["pids"]) >= 9  # type: ignore[arg-type]  # bwrap, its init, the runtime and `sleep` per session
    assert not any(alive(pid) for pid in seen["pids"])  # type: ignore[union-attr]
    assert not any(Path(d).exists() for d in seen["dirs"])  # type: ignore[union-attr]
    assert seen["right_after"] == (0, 0, [])
    assert seen["later"] == (0, [])  # nothing reopened once the in-flight model calls came back


def _raw_terminate(links: dict[str, str]) -> str:
    """Durable's own terminate webhook for the instance, with the system key the status link carries."""
    url = httpx.URL(links["statusQueryGetUri"])
    return str(url.copy_with(path=f"{url.path}/terminate", params=url.params.set("reason", "stopped by hand")))


@pytest.mark.parametrize("stop", ["terminatePostUri", "webhook"])
def test_stopping_a_root_ends_its_whole_tree(rlm_env: Path, model_server: ModelServer, stop: str) -> None:
    """Through the link the 202 hands out, or Durable's raw terminate, which runs none of our code:
    either way the sub-queries stop (no model call after the ones in flight) and every sandbox
    of the tree, the waiting root's too, is gone with its files."""
    both_asking = threading.Barrier(3, timeout=60)
    release = threading.Event()
    model_server.set_script(fan_out_held(both_asking, release, with_processes=True))
    seen: dict[str, object] = {}

    async def body(client: httpx.AsyncClient) -> None:
        links = (await client.post("/api/queries", json={"question": "fan out", "corpus": "## a\nb"})).json()
        root = links["id"]
        tree = (root, f"{root}-1-0", f"{root}-1-1")
        await asyncio.to_thread(both_asking.wait)
        backend = services.parts().executor.backend
        processes = [backend.process(session) for session in tree]
        assert all(p is not None and p.cgroup is not None for p in processes)
        seen["pids"] = {pid for p in processes for pid in p.cgroup.pids()}  # type: ignore[union-attr]
        seen["dirs"] = [p.cwd for p in processes] + [d for p in processes for d in p.cgroup.dirs]  # type: ignore[union-attr]
        url = (
            links["terminatePostUri"].replace("{text}", "stopped by hand")
            if stop == "terminatePostUri"
            else _raw_terminate(links)
        )
        seen["stopped"] = (await client.post(url)).status_code
        seen["calls_in_flight"] = len(model_server.calls)
        release.set()
        states = [await poll(client, links["statusQueryGetUri"].replace(root, instance)) for instance in tree]
        seen["states"] = [(s["runtimeStatus"], s["output"]) for s in states]
        executor = services.parts().executor

        def closed() -> bool:  # the instances end before the tree's sandboxes are all closed
            return (
                backend.live_sessions,
                executor.slots.held,
                journals(services.store(), root),
                list(backend.root.iterdir()),
            ) == (0, 0, [], [])

        await asyncio.to_thread(wait_for, closed, "the tree's sandboxes to close")

    serve_app(rlm_env, body)
    assert seen["stopped"] == 202
    assert [state for state, _ in seen["states"]] == ["Terminated"] * 3  # type: ignore[union-attr]
    assert seen["states"][0][1] == "stopped by hand"  # type: ignore[index]
    assert seen["calls_in_flight"] == 5 and len(model_server.calls) == 5  # the root's call, two per sub-query
    assert not any(alive(pid) for pid in seen["pids"])  # type: ignore[union-attr]
    assert not any(Path(d).exists() for d in seen["dirs"])  # type: ignore[union-attr]


def test_terminating_a_batch_ends_the_trees_of_its_questions(rlm_env: Path, model_server: ModelServer) -> None:
    """A batch's question is a root of its own, a sub-orchestration of the batch: when the batch
    is terminated (by the link its 202 hands out), each question's tree stops at its next step."""
    both_asking = threading.Barrier(3, timeout=60)
    release = threading.Event()
    model_server.set_script(fan_out_held(both_asking, release, with_processes=False))
    seen: dict[str, object] = {}

    async def body(client: httpx.AsyncClient) -> None:
        started = (await client.post("/api/batches", json={"corpus": "## a\nb", "questions": ["fan out"]})).json()
        root = query_instance_id(started["batch_id"], 0, "rlm")
        await asyncio.to_thread(both_asking.wait)
        management = started["management"]
        seen["stopped"] = (await client.post(management["terminatePostUri"].replace("{text}", "enough"))).status_code
        release.set()
        status_of = management["statusQueryGetUri"]
        tree = (management["id"], root, f"{root}-1-0", f"{root}-1-1")
        seen["states"] = [(await poll(client, status_of.replace(management["id"], i)))["runtimeStatus"] for i in tree]
        backend, executor = services.parts().executor.backend, services.parts().executor
        await asyncio.to_thread(
            wait_for, lambda: (backend.live_sessions, executor.slots.held) == (0, 0), "the question's sandboxes to close"
        )

    serve_app(rlm_env, body)
    assert seen["stopped"] == 202
    assert seen["states"] == ["Terminated"] * 4
    assert len(model_server.calls) == 3  # the question's call, and the one in flight per sub-query


def test_closing_a_tree_ends_every_session_of_it_and_nothing_else(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    backend = LocalBackend(LIMITS)
    try:
        executor = SandboxExecutor(backend, store, LIMITS, max_live=8)
        corpus = store.put_corpus(CORPUS)
        tree = ["q1", "q1-1-0", "q1-1-1", "q1-1-0-2-0"]
        for depth, session in enumerate(tree):
            executor.open(session, corpus, tree_id="q1", height=3 - min(depth, 3))
        executor.open("q1-1-9", corpus, tree_id="q1-1-9", height=0)  # another root whose id extends q1's
        executor.execute("q1-1-0", "c1", "open('notes.txt', 'w').write('x')")
        executor.close("q1-1-1")  # a finished sub-query: sandbox gone, journal kept for late retries
        assert executor.execute("q1-1-1", "c1", "1").status == "done"  # rebuilt by replay while the tree lives
        dirs = [backend.process(s).cwd for s in tree]  # type: ignore[union-attr]
        assert sorted(executor.close_tree("q1")) == sorted(tree)
        assert [backend.process(s) for s in tree] == [None] * 4
        assert not any(d.exists() for d in dirs)
        assert journals(store, "q1") == ["sessions/q1-1-9/journal.json"]
        assert executor.slots.held == 1 and backend.live_sessions == 1
        asyncio.run(executor.reserve("q1-1-0", "q1", 2))  # a late activity of the ended tree
        with pytest.raises(SandboxError, match="has ended"):
            executor.execute("q1-1-0", "late", "1")
        assert executor.slots.held == 1 and backend.process("q1-1-0") is None  # it gave its slot back
        assert executor.execute("q1-1-9", "c1", "len(context)").stdout == f"{len(CORPUS)}\n"
    finally:
        backend.close()


def test_closing_a_tree_deletes_its_aca_sessions(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    with ACAServer() as server:
        backend = ACABackend(server.url, LIMITS, credential=_Token(server.token), backoff_seconds=0.01)
        try:
            executor = SandboxExecutor(backend, store, LIMITS)
            corpus = store.put_corpus(CORPUS)
            for session in ("aca-root", "aca-root-1-0", "aca-root-1-1"):
                executor.open(session, corpus, tree_id="aca-root", height=1)
                assert executor.execute(session, "c1", "x = 1").status == "done"
            assert set(server.kernels) == {"aca-root", "aca-root-1-0", "aca-root-1-1"}
            executor.close_tree("aca-root")
            assert server.kernels == {}
            deleted = [entry for entry in server.log if entry[:2] == ("DELETE", "/session")]
            assert len(deleted) == 3 and all(status == 204 for _, _, status in deleted)
            assert journals(store, "aca-root") == []
        finally:
            backend.close()


def test_an_idle_session_gives_up_its_sandbox_and_is_rebuilt_when_used(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    backend = LocalBackend(LIMITS)
    try:
        executor = SandboxExecutor(backend, store, LIMITS, max_live=1, idle_seconds=0.2)
        executor.open("idle-1", store.put_corpus(CORPUS))
        executor.execute("idle-1", "c1", "kept = 'state'")
        first = backend.process("idle-1")
        assert first is not None and executor.slots.held == 1
        wait_for(lambda: backend.process("idle-1") is None and executor.slots.held == 0, "the reaper to stop the idle sandbox")
        assert not first.cwd.exists()
        executor.open("idle-2", store.put_corpus(CORPUS))  # the only slot is free for another session
        executor.close("idle-2")
        assert executor.execute("idle-1", "c2", "kept").stdout == "'state'\n"
    finally:
        backend.close()


def test_an_idle_aca_session_frees_its_slot_but_is_not_deleted(tmp_path: Path) -> None:
    """Another worker may be using it; the pool's cooldown ends it when it is really idle."""
    store = FileStore(tmp_path / "store")
    with ACAServer() as server:
        backend = ACABackend(server.url, LIMITS, credential=_Token(server.token), backoff_seconds=0.01)
        try:
            executor = SandboxExecutor(backend, store, LIMITS, max_live=1, idle_seconds=0.2)
            executor.open("aca-idle", store.put_corpus(CORPUS))
            executor.execute("aca-idle", "c1", "kept = 'state'")
            wait_for(lambda: executor.slots.held == 0, "the reaper to free the idle session's slot")
            assert ("DELETE", "/session", 204) not in server.log and "aca-idle" in server.kernels
            uploads = sum(1 for entry in server.log if entry[:2] == ("POST", "/files"))
            assert executor.execute("aca-idle", "c2", "kept").stdout == "'state'\n"
            assert sum(1 for entry in server.log if entry[:2] == ("POST", "/files")) == uploads  # no rebuild
        finally:
            backend.close()


class _Token:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: object):
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3600)
