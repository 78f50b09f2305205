"""The sandbox executor over the local backend: real sandbox processes, a real filesystem store."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.config import Settings
from shared.models import QueryRequest
from shared.sandbox import CellLimits, SandboxExecutor, make_executor
from shared.sandbox.local import LocalBackend
from shared.starting import root_task
from shared.steps import Parts, open_session
from shared.storage import FileStore
from tests.support.telemetry import in_memory

CORPUS = "## Alpha\nThe needle is 42.\n\n## Beta\nNothing here.\n"
LIMITS = CellLimits(timeout_seconds=30, memory_mb=1024, output_max_chars=5000)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    backend = LocalBackend(LIMITS)
    yield backend
    backend.close()


@pytest.fixture
def executor(backend: LocalBackend, store: FileStore) -> SandboxExecutor:
    executor = SandboxExecutor(backend, store, LIMITS)
    executor.open("sess-1", store.put_corpus(CORPUS))
    return executor


@contextmanager
def session(store: FileStore, limits: CellLimits) -> Iterator[tuple[SandboxExecutor, LocalBackend]]:
    """Session "s" over CORPUS with its own limits, its sandbox ended afterwards."""
    backend = LocalBackend(limits)
    try:
        executor = SandboxExecutor(backend, store, limits)
        executor.open("s", store.put_corpus(CORPUS))
        yield executor, backend
    finally:
        backend.close()


def kill_sandbox(backend: LocalBackend, session_id: str) -> None:
    """SIGKILL the sandbox and wait until the kernel has reaped it into a zombie or gone."""
    process = backend.process(session_id)
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    while process.alive():
        time.sleep(0.01)


def test_context_and_repl_echo(executor: SandboxExecutor) -> None:
    result = executor.execute("sess-1", "c1", "sections = context.split('## ')[1:]\nlen(sections)")
    assert result.status == "done"
    assert result.stdout == "2\n"
    assert result.final is None


def test_batch_of_eight_suspends_once(executor: SandboxExecutor) -> None:
    code = (
        "pairs = [(f'count words in part {i}', f'part {i}: ' + 'w ' * i) for i in range(8)]\n"
        "answers = rlm_query_batch(pairs)\n"
        "Final = sum(int(a) for a in answers)\n"
    )
    first = executor.execute("sess-1", "c1", code)
    assert first.status == "suspended"
    assert len(first.pending) == 8
    assert {p.kind for p in first.pending} == {"rlm"}
    texts = [executor.read_sub_context("sess-1", p.sub_context_file or "") for p in first.pending]
    assert texts == [f"part {i}: " + "w " * i for i in range(8)]
    answers = {p.id: str(executor.read_sub_context("sess-1", p.sub_context_file or "").count("w")) for p in first.pending}
    done = executor.resume("sess-1", "c1", answers)
    assert done.status == "done"
    assert done.final == str(sum(range(8)))


def test_sequential_queries_suspend_twice(executor: SandboxExecutor) -> None:
    code = "a = rlm_query('first')\nb = llm_query('second after ' + a)\nFinal = a + '+' + b\n"
    first = executor.execute("sess-1", "c1", code)
    assert [(p.kind, p.question, p.sub_context_file) for p in first.pending] == [("rlm", "first", None)]
    second = executor.resume("sess-1", "c1", {first.pending[0].id: "A"})
    assert second.status == "suspended"
    assert [(p.kind, p.question) for p in second.pending] == [("llm", "second after A")]
    done = executor.resume("sess-1", "c1", {second.pending[0].id: "B"})
    assert (done.status, done.final) == ("done", "A+B")


def test_thread_pool_fan_out_suspends_when_all_workers_block(executor: SandboxExecutor) -> None:
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(8) as pool:\n"
        "    out = list(pool.map(lambda q: rlm_query(q), ['q%d' % i for i in range(8)]))\n"
        "Final = ','.join(out)\n"
    )
    result = executor.execute("sess-1", "c1", code)
    while result.status == "suspended":
        result = executor.resume("sess-1", "c1", {p.id: p.question.upper() for p in result.pending})
    assert result.final == ",".join(f"Q{i}" for i in range(8))


def test_repeated_resume_is_idempotent(executor: SandboxExecutor) -> None:
    first = executor.execute("sess-1", "c1", "a = rlm_query('x')\nb = rlm_query('y')\nFinal = a + b")
    answers = {first.pending[0].id: "1"}
    second = executor.resume("sess-1", "c1", answers)
    assert executor.resume("sess-1", "c1", answers) == second
    done = executor.resume("sess-1", "c1", {second.pending[0].id: "2"})
    assert done.final == "12"
    assert executor.resume("sess-1", "c1", answers) == done


def test_same_cell_id_runs_once(executor: SandboxExecutor) -> None:
    executor.execute("sess-1", "c1", "counter = 0")
    first = executor.execute("sess-1", "c2", "counter += 1\ncounter")
    again = executor.execute("sess-1", "c2", "counter += 1\ncounter")
    assert first == again
    assert executor.execute("sess-1", "c3", "counter").stdout == "1\n"


def test_error_result_carries_the_traceback(executor: SandboxExecutor) -> None:
    result = executor.execute("sess-1", "c1", "def f():\n    return 1 / 0\nf()")
    assert result.status == "error"
    assert "ZeroDivisionError" in (result.error or "")
    assert '<cell c1>", line 2, in f' in result.stderr
    syntax = executor.execute("sess-1", "c2", "def (:")
    assert syntax.status == "error" and "SyntaxError" in syntax.stderr


def test_final_final_var_and_used_sections(executor: SandboxExecutor) -> None:
    assert executor.execute("sess-1", "c1", "FINAL('forty-two')").final == "forty-two"
    result = executor.execute("sess-1", "c2", "answer = 42\nused_sections.append('Alpha')\nFINAL_VAR('answer')")
    assert (result.final, result.used_sections) == ("42", ["Alpha"])
    no_variable = executor.execute("sess-1", "c3", "FINAL_VAR('nope')")
    assert (no_variable.status, no_variable.final) == ("done", "nope")  # a string naming no variable is the answer


def test_output_is_capped_with_a_note(executor: SandboxExecutor) -> None:
    result = executor.execute("sess-1", "c1", "print('x' * 12000)")
    assert result.stdout.startswith("x" * LIMITS.output_max_chars)
    assert f"{12001 - LIMITS.output_max_chars} more characters" in result.stdout


def test_model_secrets_are_invisible(monkeypatch: pytest.MonkeyPatch, store: FileStore) -> None:
    monkeypatch.setenv("MODEL_API_KEY", "sk-do-not-leak")
    with session(store, LIMITS) as (executor, backend):
        code = "import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ', 'rb').read())"
        result = executor.execute("s", "c1", code)
    assert result.status == "done"
    assert "sk-do-not-leak" not in result.stdout and "MODEL_API_KEY" not in result.stdout
    assert "PATH" in result.stdout


def test_infinite_loop_times_out_and_the_session_lives_on(store: FileStore) -> None:
    limits = CellLimits(timeout_seconds=2, memory_mb=1024, output_max_chars=5000)
    with session(store, limits) as (executor, backend):
        executor.execute("s", "c1", "kept = 'still here'")
        looped = executor.execute("s", "c2", "print('spinning')\nwhile True:\n    pass")
        assert looped.status == "timeout"
        assert "spinning" in looped.stdout
        assert "restarted" in looped.stderr
        assert backend.process("s") is None
        after = executor.execute("s", "c3", "print(kept)")
        assert (after.status, after.stdout) == ("done", "still here\n")
        assert executor.execute("s", "c2", "anything") == looped


def test_a_cell_that_holds_the_gil_is_killed_by_the_host(store: FileStore) -> None:
    """A single C-level operation never lets the runtime's own watchdog run; the backend's deadline does."""
    limits = CellLimits(timeout_seconds=1, memory_mb=1024, output_max_chars=5000)
    with session(store, limits) as (executor, backend):
        executor.execute("s", "c1", "kept = 3")
        assert executor.execute("s", "c2", "huge = 10 ** (10 ** 9)").status == "timeout"
        assert executor.execute("s", "c3", "kept").stdout == "3\n"


@pytest.mark.parametrize(
    "bomb",
    ["x = bytearray(10**11)", "grow = []\nwhile True:\n    grow.append(' ' * 10**6)"],
    ids=["huge-alloc", "growing-list"],
)
def test_memory_bomb_is_an_error_and_later_cells_work(bomb: str, store: FileStore) -> None:
    limits = CellLimits(timeout_seconds=60, memory_mb=512, output_max_chars=5000)
    with session(store, limits) as (executor, backend):
        executor.execute("s", "c1", "kept = 7")
        result = executor.execute("s", "c2", bomb)
        assert result.status == "error"
        assert "MemoryError" in (result.error or "")
        after = executor.execute("s", "c3", "print(kept, 'grow' in globals())\nlen(bytearray(10**7))")
        assert (after.status, after.stdout) == ("done", "7 False\n10000000\n")


def test_rebuild_after_sigkill(executor: SandboxExecutor, backend: LocalBackend) -> None:
    executor.execute("sess-1", "c1", "x = rlm_query('seed')")
    executor.resume("sess-1", "c1", {"c1.0": "5"})
    executor.execute("sess-1", "c2", "y = int(x) * 2")
    kill_sandbox(backend, "sess-1")
    result = executor.execute("sess-1", "c3", "print(x, y)")
    assert (result.status, result.stdout) == ("done", "5 10\n")


def test_resume_after_sigkill_replays_the_suspended_cell(executor: SandboxExecutor, backend: LocalBackend) -> None:
    first = executor.execute("sess-1", "c1", "print('start')\na = rlm_query('one', 'ctx one')\nb = rlm_query('two')\nFinal = a + b")
    second = executor.resume("sess-1", "c1", {first.pending[0].id: "1"})
    kill_sandbox(backend, "sess-1")
    done = executor.resume("sess-1", "c1", {second.pending[0].id: "2"})
    assert (done.status, done.final, done.stdout) == ("done", "12", "start\n")


def test_sub_context_is_recreated_for_a_fresh_executor(executor: SandboxExecutor, store: FileStore) -> None:
    first = executor.execute("sess-1", "c1", "a = rlm_query('one', 'ctx ' * 3)")
    backend = LocalBackend(LIMITS)
    try:
        fresh = SandboxExecutor(backend, store, LIMITS)
        assert fresh.read_sub_context("sess-1", first.pending[0].sub_context_file or "") == "ctx " * 3
        assert fresh.resume("sess-1", "c1", {first.pending[0].id: "A"}).status == "done"
    finally:
        backend.close()


def test_fresh_executor_rebuilds_from_the_journal(executor: SandboxExecutor, store: FileStore) -> None:
    executor.execute("sess-1", "c1", "total = 0")
    executor.execute("sess-1", "c2", "total += 1")
    suspended = executor.execute("sess-1", "c3", "total += int(llm_query('how many?'))")
    backend = LocalBackend(LIMITS)
    try:
        fresh = SandboxExecutor(backend, store, LIMITS)
        done = fresh.resume("sess-1", "c3", {suspended.pending[0].id: "10"})
        assert done.status == "done"
        assert fresh.execute("sess-1", "c4", "total").stdout == "11\n"
    finally:
        backend.close()


def test_parallel_sessions(store: FileStore, backend: LocalBackend) -> None:
    executor = SandboxExecutor(backend, store, LIMITS)
    corpus_id = store.put_corpus(CORPUS)

    def run(n: int) -> str | None:
        session = f"par-{n}"
        executor.open(session, corpus_id)
        first = executor.execute(session, "c1", f"Final = str({n}) + rlm_query('suffix')")
        return executor.resume(session, "c1", {first.pending[0].id: "!"}).final

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(run, range(6))) == [f"{n}!" for n in range(6)]


def test_open_is_idempotent_and_checks_the_corpus(executor: SandboxExecutor, store: FileStore) -> None:
    executor.execute("sess-1", "c1", "v = 1")
    executor.open("sess-1", store.put_corpus(CORPUS))
    assert executor.execute("sess-1", "c2", "v").stdout == "1\n"
    with pytest.raises(ValueError):
        executor.open("sess-1", store.put_corpus("another corpus"))


def test_close_then_late_retry_is_answered_from_the_journal(executor: SandboxExecutor, backend: LocalBackend) -> None:
    done = executor.execute("sess-1", "c1", "Final = 'x'")
    executor.close("sess-1")
    assert backend.process("sess-1") is None
    assert executor.execute("sess-1", "c1", "Final = 'x'") == done


def test_large_context_loads(store: FileStore, backend: LocalBackend) -> None:
    corpus = ("## Doc\n" + "a" * 1000 + "\n") * 100_000
    executor = SandboxExecutor(backend, store, LIMITS)
    executor.open("big", store.put_corpus(corpus))
    result = executor.execute("big", "c1", "len(context)")
    assert result.stdout == f"{len(corpus)}\n"
    assert len(corpus) > 100_000_000


def test_make_executor_without_pool_endpoint_is_local(store: FileStore) -> None:
    executor = make_executor(Settings(SESSION_POOL_ENDPOINT=None), store)
    assert isinstance(executor.backend, LocalBackend)


def test_a_retried_opening_counts_its_query_once(tmp_path: Path) -> None:
    """Activities are at-least-once: opening the session again (a retry) finds the same
    sandbox, keeps the first start in the trace and does not count the query twice."""
    collected = in_memory()

    def started() -> int:
        return sum(p.value for p in collected.metric_points("rlm.queries.started") if p.attributes.get("rlm.depth") == 0)

    parts = Parts.from_settings(Settings(RLM_DATA_DIR=str(tmp_path / "data")))
    try:
        task = root_task(QueryRequest(question="Where is the needle?", corpus=CORPUS), "retried-1", parts.settings, parts.store)
        payload = {"task": task.model_dump(), "instance_id": "retried-1", "step": 1, "iteration": 0}
        before = started()
        first = asyncio.run(open_session(payload, parts))
        meta = parts.traces.read_meta("retried-1", "retried-1")
        sandbox = parts.executor.backend.process("retried-1")  # type: ignore[attr-defined]
        assert asyncio.run(open_session(payload, parts)) == first
        assert started() == before + 1
        assert parts.traces.read_meta("retried-1", "retried-1") == meta
        assert parts.executor.backend.process("retried-1") is sandbox  # type: ignore[attr-defined]
    finally:
        parts.executor.close_tree("retried-1")
