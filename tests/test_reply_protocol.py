"""Reading replies the way real models write them (shared.protocol), and the per-block view of
a cell's output the model gets back (shared.trace.cell_view)."""

from __future__ import annotations

import ast
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.models import BlockEnd, CellResult
from shared.protocol import CODE_TAGS, CUT_TURN_NOTE, PROSE_FINAL_NOTE, parse_reply, runnable
from shared.trace import StepRecord, cell_view, fair_shares, turns_from_steps

STATEMENTS = st.sampled_from(
    [
        "x = 1",
        "print(len(context))",
        "if x:\n    y = [i for i in range(3)]",
        "for i in range(3):\n    print(i)\n    if i:\n        continue",
        "def f(a):\n    return a * 2",
        "text = '''two\n  lines'''",
        "try:\n    z = 1 / 0\nexcept ZeroDivisionError:\n    z = 0",
        "",
        "# a comment",
    ]
)
PYTHON = (
    st.lists(STATEMENTS, min_size=1, max_size=6)
    .map("\n".join)
    .filter(lambda code: any(line.strip() and not line.startswith("#") for line in code.splitlines()))
)
INDENT = st.sampled_from(["  ", "    ", "\t", "        "])
END_TOKENS = st.sampled_from(
    ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<\uff5cend\u2581of\u2581sentence\uff5c>"]
)


def fenced(code: str, tag: str = "repl") -> str:
    return f"```{tag}\n{code}\n```"


@given(PYTHON, INDENT)
def test_a_block_indented_as_a_whole_is_dedented_back(code: str, indent: str) -> None:
    indented = textwrap.indent(code, indent)
    assert parse_reply(f"Steps:\n1. Look:\n{textwrap.indent(fenced(code), indent)}").blocks == [code.strip()]
    assert runnable(indented) == textwrap.dedent(indented)


@given(PYTHON)
def test_a_block_that_parses_is_left_as_written(code: str) -> None:
    assert runnable(code) == code


def test_a_block_broken_for_other_reasons_is_left_as_written() -> None:
    ragged = "  x = 1\ny = 2"
    assert parse_reply(fenced(ragged)).blocks == [ragged]


@given(PYTHON, st.lists(END_TOKENS, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_template_tokens_change_nothing_but_themselves(code: str, tokens: list[str], rnd) -> None:
    lines = f"Let me look.\n{fenced(code)}\nDone for now.".split("\n")
    for token in tokens:
        lines[rnd.randrange(len(lines))] += token
    assert parse_reply("<|im_start|>assistant\n" + "\n".join(lines)).blocks == [code.strip()]


def test_a_reply_that_writes_the_next_user_turn_is_cut_there() -> None:
    reply = (
        "<|im_start|>assistant\n```repl\nprint(len(context))\n```<|im_end|>\n"
        "<|im_start|>user\nREPL output:\n12<|im_end|>\n<|im_start|>assistant\n```repl\nFINAL('invented')\n```"
    )
    parsed = parse_reply(reply)
    assert parsed.blocks == ["print(len(context))"]
    assert parsed.final_text is None and CUT_TURN_NOTE in parsed.notes
    llama = "```repl\nx = 1\n```<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n```repl\nx = 2\n```"
    assert parse_reply(llama).blocks == ["x = 1"]


TAGS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+-", max_size=12).filter(lambda t: t.lower() not in CODE_TAGS)
BODIES = st.text(alphabet=st.characters(blacklist_characters="`", blacklist_categories=("Cs",)), max_size=200)


@given(TAGS, BODIES)
def test_fences_that_are_not_code_never_run(tag: str, body: str) -> None:
    alone = parse_reply(f"The output will be:\n```{tag}\n{body}\n```")
    assert alone.blocks == []
    beside = parse_reply(f"{fenced('print(1)')}\n```{tag}\n{body}\n```")
    assert beside.blocks == ["print(1)"]
    assert any("not run" in note and "real output" in note for note in beside.notes)


def test_invented_output_is_named_in_the_note() -> None:
    parsed = parse_reply("```repl\nprint(len(context))\n```\n```text\n99\n```\n```output\n99\n```\n```\n99\n```")
    assert parsed.blocks == ["print(len(context))"]
    assert parsed.notes == [
        "[note] Only ```repl blocks run; your ```text, ```output, ``` (untagged) blocks were not run. "
        "The real output of your code follows."
    ]


@pytest.mark.parametrize("tag", sorted(CODE_TAGS) + ["Python", "REPL"])
def test_code_tags_run(tag: str) -> None:
    assert parse_reply(fenced("x = 1", tag)).blocks == ["x = 1"]


def test_each_block_is_kept_on_its_own() -> None:
    parsed = parse_reply("First:\n```repl\na = 1\n```\nthen\n```python\nprint(a)\n```\n```repl\n\n```")
    assert parsed.blocks == ["a = 1", "print(a)"]
    assert parsed.code == "a = 1\n\nprint(a)"


def test_a_fence_closes_only_at_the_end_of_a_line() -> None:
    code = 'print("``` is a fence")\nprint(2)'
    assert parse_reply(fenced(code)).blocks == [code]
    assert parse_reply("```repl\nprint(1)```\nprose").blocks == ["print(1)"]


@pytest.mark.parametrize(
    ("reply", "final"),
    [
        ("```repl\nFINAL(The harbor gauge, on 2 March)\n```", "The harbor gauge, on 2 March"),
        ('```repl\nFINAL("the harbor")\n```', None),  # valid Python: it runs, and FINAL() in the REPL ends the query
        ("FINAL(42)\n\nHope this helps.", "42"),
        ("FINAL(first)\nActually:\nFINAL(second try)", "second try"),
        ("FINAL(The answer:\n- a\n- b)", "The answer:\n- a\n- b"),
    ],
)
def test_written_finals(reply: str, final: str | None) -> None:
    parsed = parse_reply(reply)
    assert parsed.final_text == final
    assert (parsed.blocks == []) == (final is not None)


def test_final_of_a_bare_name_reads_the_variable_when_there_is_one() -> None:
    assert parse_reply("All done. FINAL(result)").blocks == ["FINAL_VAR('result')"]
    assert parse_reply("FINAL_VAR('result')").blocks == ["FINAL_VAR('result')"]
    assert parse_reply('FINAL_VAR("The harbor")').blocks == ["FINAL_VAR('The harbor')"]


def test_a_written_final_beside_code_does_not_end_and_says_why() -> None:
    for reply in ("```repl\nx = compute()\n```\nFINAL(guess)", "```repl\nx = 1\n```\n```repl\nFINAL(The harbor, surely)\n```"):
        parsed = parse_reply(reply)
        assert parsed.final_text is None and parsed.blocks[0].startswith("x = ")
        assert PROSE_FINAL_NOTE in parsed.notes


def test_final_var_in_prose_beside_code_runs_after_the_code() -> None:
    assert parse_reply("```repl\nfound = 3\n```\nFINAL_VAR(found)").blocks == ["found = 3", "FINAL_VAR('found')"]


@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), min_size=1, max_size=6))
def test_block_outputs_slice_the_streams_back(pieces: list[tuple[str, str]]) -> None:
    ends, out_end, err_end = [], 0, 0
    for stdout, stderr in pieces:
        out_end, err_end = out_end + len(stdout), err_end + len(stderr)
        ends.append(BlockEnd(stdout_end=out_end, stderr_end=err_end))
    cell = CellResult(
        cell_id="c", status="done", stdout="".join(p[0] for p in pieces), stderr="".join(p[1] for p in pieces), blocks=ends
    )
    assert [(o, e) for o, e, _ in cell.block_outputs()] == pieces


@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=8), st.integers(min_value=0, max_value=6000))
def test_fair_shares(lengths: list[int], total: int) -> None:
    shares = fair_shares(lengths, total)
    assert all(0 <= share <= length for share, length in zip(shares, lengths, strict=True))
    if sum(lengths) <= total:
        assert shares == lengths
    else:
        assert sum(shares) == total
        cut = [share for share, length in zip(shares, lengths, strict=True) if share < length]
        assert min(cut) >= max(shares) - 1  # no text that had to be cut got less than another's share


def test_the_model_sees_each_block_under_its_own_header() -> None:
    stdout = "first\n" + "x" * 5000 + "\nlast\n"
    stderr = "Traceback (most recent call last):\nNameError: name 'oops' is not defined\n"
    cell = CellResult(
        cell_id="c",
        status="error",
        stdout=stdout,
        stderr=stderr,
        error="block 2: NameError: name 'oops' is not defined",
        blocks=[
            BlockEnd(stdout_end=6, stderr_end=0),
            BlockEnd(stdout_end=6, stderr_end=len(stderr), error="NameError: name 'oops' is not defined"),
            BlockEnd(stdout_end=len(stdout), stderr_end=len(stderr)),
        ],
    )
    view = cell_view(cell, 1000)
    one, two, three = (
        view.index("[block 1 of 3]\nfirst"),
        view.index("[block 2 of 3]\n[stderr]\nTraceback"),
        view.index("[block 3 of 3]\n"),
    )
    assert one < two < three
    assert "NameError" in view[two:three] and "chars cut" in view[three:] and view.endswith("last\n")
    assert len(view) < 1100


def test_notes_on_the_reply_come_before_the_output() -> None:
    started = "2025-01-01T00:00:00Z"
    reply = "```repl\nprint(6 * 7)\n```\n```text\n41\n```\nFINAL(41)"
    parsed = parse_reply(reply)
    steps = [
        StepRecord(
            instance_id="i",
            step=1,
            iteration=1,
            kind="generate",
            started_at=started,
            reply=reply,
            blocks=parsed.blocks,
            notes=parsed.notes,
        ),
        StepRecord(
            instance_id="i",
            step=2,
            iteration=1,
            kind="execute",
            started_at=started,
            cell=CellResult(cell_id="c", status="done", stdout="42\n"),
        ),
    ]
    (turn,) = turns_from_steps(steps, 2000)
    assert turn.reply == reply
    assert turn.output is not None and turn.output.endswith("\n42\n")
    assert "```text block was not run" in turn.output and PROSE_FINAL_NOTE in turn.output


def test_blocks_in_a_numbered_list_parse() -> None:
    reply = "1. a\n   ```repl\n   x = 1\n   ```\n2. b\n   ```python\n   for i in range(x):\n       print(i)\n   ```"
    for block in parse_reply(reply).blocks:
        ast.parse(block)
