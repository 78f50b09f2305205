"""The REPL speaks every dialect models write (shared.sandbox.runtime), in a real local sandbox:
the reference implementation's names beside ours, `model=`, SHOW_VARS, context_0, the answer
dict, FINAL / FINAL_VAR by name and by value, and a reply's blocks run one after another."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.sandbox import CellLimits, SandboxExecutor
from shared.sandbox.local import LocalBackend
from shared.sandbox.runtime import request_key
from shared.storage import FileStore

CORPUS = "## Alpha\nThe needle is 42.\n\n## Beta\nNothing here.\n"
LIMITS = CellLimits(timeout_seconds=30, memory_mb=512, output_max_chars=5000)
cell_ids = (f"d{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def repl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxExecutor]:
    """One sandbox session shared by the module's tests (each uses fresh cell ids and names)."""
    store = FileStore(tmp_path_factory.mktemp("store"))
    backend = LocalBackend(LIMITS)
    executor = SandboxExecutor(backend, store, LIMITS)
    executor.open("dialects", store.put_corpus(CORPUS))
    yield executor
    backend.close()


def run(repl: SandboxExecutor, code: str | list[str]):
    return repl.execute("dialects", next(cell_ids), code)


def test_reference_names_are_our_batch_functions(repl: SandboxExecutor) -> None:
    result = run(repl, "print(rlm_query_batched is rlm_query_batch, llm_query_batched is llm_query_batch)")
    assert result.stdout == "True True\n"
    fan = run(repl, "a = rlm_query_batched(['q1', ('q2', 'part two')])\nb = llm_query_batched(['p1', 'p2'])")
    assert [(p.kind, p.question, p.sub_context_file is not None) for p in fan.pending] == [
        ("rlm", "q1", False), ("rlm", "q2", True),
    ]  # fmt: skip
    step = repl.resume("dialects", fan.cell_id, {p.id: p.question.upper() for p in fan.pending})
    assert [(p.kind, p.question) for p in step.pending] == [("llm", "p1"), ("llm", "p2")]
    done = repl.resume("dialects", fan.cell_id, {p.id: p.question.upper() for p in step.pending})
    assert done.status == "done"
    assert run(repl, "print(a, b)").stdout == "['Q1', 'Q2'] ['P1', 'P2']\n"


def test_rlm_query_takes_the_reference_keyword_for_its_question(repl: SandboxExecutor) -> None:
    result = run(repl, "kw = rlm_query(prompt='asked by keyword')")
    assert [p.question for p in result.pending] == ["asked by keyword"]
    repl.resume("dialects", result.cell_id, {result.pending[0].id: "ok"})


def test_model_keyword_on_every_query_function(repl: SandboxExecutor) -> None:
    code = (
        "m1 = rlm_query('one', model='big')\n"
        "m2 = llm_query('two', model=' big ')\n"
        "m3 = rlm_query_batched([('three', 'text')], model='small')\n"
        "m4 = llm_query_batched(['four'], model='')\n"
        "m5 = llm_query('five')\n"
    )
    seen = []
    result = run(repl, code)
    while result.status == "suspended":
        seen += [(p.question, p.model) for p in result.pending]
        result = repl.resume("dialects", result.cell_id, {p.id: "x" for p in result.pending})
    assert seen == [("one", "big"), ("two", "big"), ("three", "small"), ("four", None), ("five", None)]
    bad = run(repl, "llm_query('q', model=3)")
    assert bad.status == "error" and "model= takes a model name" in (bad.error or "")


def test_the_model_is_part_of_a_request_key_only_when_named() -> None:
    assert request_key("llm", "q", None) == request_key("llm", "q", None, None)
    assert request_key("llm", "q", None, "big") != request_key("llm", "q", None)


def test_show_vars_lists_what_code_created_with_type_and_size(repl: SandboxExecutor) -> None:
    run(
        repl,
        "import re\nsv_text = 'x' * 1234\nsv_hits = [1, 2, 3]\nsv_n = 7\nused_sections = ['Alpha']\ndef sv_helper():\n    pass",
    )
    shown = run(repl, "SHOW_VARS()").stdout
    assert "  sv_text: str, 1,234 chars\n" in shown
    assert "  sv_hits: list, 3 items\n" in shown
    assert "  sv_n: int = 7\n" in shown
    assert "  used_sections: list, 1 items\n" in shown  # predefined, but rebound by code
    assert "sv_helper: function" in shown
    assert "  re:" not in shown and "context" not in shown and "llm_query" not in shown
    assert shown.startswith("Variables:\n")  # the echo shows the text, not its repr
    assert run(repl, "print(SHOW_VARS() == str(SHOW_VARS()))").stdout == "True\n"


def test_show_vars_before_anything_was_created(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    backend = LocalBackend(LIMITS)
    try:
        executor = SandboxExecutor(backend, store, LIMITS)
        executor.open("fresh", store.put_corpus(CORPUS))
        assert executor.execute("fresh", "c1", "print(SHOW_VARS())").stdout.startswith("No variables created yet.")
    finally:
        backend.close()


def test_context_0_is_context(repl: SandboxExecutor) -> None:
    assert run(repl, "print(context_0 is context, context_0.count('##'))").stdout == "True 2\n"


@pytest.mark.parametrize(
    ("code", "final"),
    [
        (["answer['content'] = 'from the dict'", "answer['ready'] = True"], "from the dict"),
        (["answer = {'content': 42, 'ready': True}"], "42"),
        (["answer.update(content='updated', ready=True)"], "updated"),
        (["FINAL('called in code')"], "called in code"),
        (["fv_name = 'read by name'", "FINAL_VAR('fv_name')"], "read by name"),
        (["fv_bare = 'read unquoted'", "FINAL_VAR(fv_bare)"], "read unquoted"),
        (["fv_q = 'quoted twice'", "FINAL_VAR(' \"fv_q\" ')"], "quoted twice"),
        (["FINAL_VAR('the answer itself, naming no variable')"], "the answer itself, naming no variable"),
        (["FINAL_VAR(6 * 7)"], "42"),
        (["answer['content'] = 'via FINAL'", "FINAL(answer)"], "via FINAL"),
    ],
    ids=["dict-ready", "dict-rebound", "dict-update", "FINAL", "FINAL_VAR-name", "FINAL_VAR-unquoted", "FINAL_VAR-quoted-twice",
         "FINAL_VAR-text", "FINAL_VAR-value", "FINAL-of-dict"],
)  # fmt: skip
def test_ways_to_finish(tmp_path: Path, code: list[str], final: str) -> None:
    store = FileStore(tmp_path)
    backend = LocalBackend(LIMITS)
    try:
        executor = SandboxExecutor(backend, store, LIMITS)
        executor.open("finish", store.put_corpus(CORPUS))
        assert executor.execute("finish", "c0", "answer['content'] = 'not yet'").final is None  # not ready: no answer
        result = executor.execute("finish", "c1", code)
        assert (result.status, result.final) == ("done", final)
    finally:
        backend.close()


def test_an_error_in_one_block_is_shown_for_it_and_the_next_block_runs(repl: SandboxExecutor) -> None:
    result = run(repl, ["print('one')", "print(undefined_name)", "print('three')"])
    assert result.status == "error"
    assert result.error == "block 2: NameError: name 'undefined_name' is not defined"
    (out1, err1, e1), (out2, err2, e2), (out3, err3, e3) = result.block_outputs()
    assert (out1, err1, e1) == ("one\n", "", None)
    assert out2 == "" and 'block 2>", line 1' in err2 and e2 == "NameError: name 'undefined_name' is not defined"
    assert (out3, err3, e3) == ("three\n", "", None)


def test_each_block_echoes_its_last_expression(repl: SandboxExecutor) -> None:
    result = run(repl, ["e1 = 2\ne1 * 3", "e1 * 4"])
    assert [out for out, _, _ in result.block_outputs()] == ["6\n", "8\n"]


def test_a_memory_error_stops_the_blocks_after_it(repl: SandboxExecutor) -> None:
    result = run(repl, ["print('before')", "blob = bytearray(10**11)", "print('after')"])
    assert result.status == "error" and "MemoryError" in (result.error or "")
    assert "after" not in result.stdout and len(result.blocks) == 2


def test_a_block_suspends_and_the_blocks_after_it_run_on_resume(repl: SandboxExecutor) -> None:
    first = run(repl, ["print('a')", "sx = rlm_query('inside block two')\nprint('b', sx)", "print('c')"])
    assert first.status == "suspended" and [p.question for p in first.pending] == ["inside block two"]
    assert first.stdout == "a\n"
    done = repl.resume("dialects", first.cell_id, {first.pending[0].id: "B"})
    assert [out for out, _, _ in done.block_outputs()] == ["a\n", "b B\n", "c\n"]


def test_a_multi_block_cell_with_a_model_is_rebuilt_by_replay(tmp_path: Path) -> None:
    """SIGKILL the sandbox while block 2 waits: resuming replays blocks 1-2 with the recorded
    answer (keyed by the model too) and runs on, with the same output as without the kill."""
    store = FileStore(tmp_path)
    backend = LocalBackend(LIMITS)
    try:
        executor = SandboxExecutor(backend, store, LIMITS)
        executor.open("r", store.put_corpus(CORPUS))
        blocks = [
            "print('start')",
            "a = rlm_query('one', model='big')\nprint('a', a)",
            "b = llm_query('two', model='big')\nFinal = a + b",
        ]
        first = executor.execute("r", "c1", blocks)
        second = executor.resume("r", "c1", {first.pending[0].id: "1"})
        assert second.status == "suspended" and second.pending[0].model == "big"
        process = backend.process("r")
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        while process.alive():
            time.sleep(0.01)
        done = executor.resume("r", "c1", {second.pending[0].id: "2"})
        assert (done.status, done.final, done.stdout) == ("done", "12", "start\na 1\n")
        assert [out for out, _, _ in done.block_outputs()] == ["start\n", "a 1\n", ""]
    finally:
        backend.close()


def test_odd_values_do_not_break_show_vars_or_the_answer_dict(repl: SandboxExecutor) -> None:
    code = (
        "class Odd:\n    def __len__(self):\n        raise RuntimeError('no')\n    def __bool__(self):\n        raise ValueError('no truth')\n"
        "odd_value = Odd()\nodd_big = 10 ** 5000\nodd_answer = answer\nanswer = {'content': 'x', 'ready': Odd()}\nprint(SHOW_VARS())"
    )
    result = run(repl, code)
    assert result.status == "done" and result.final is None
    assert "  odd_value: Odd\n" in result.stdout and "  odd_big: int\n" in result.stdout
    run(repl, "answer = odd_answer")
