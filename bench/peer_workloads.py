"""The tasks every peer runs, written once, and what the scripted server's log says about a run.

The scripted model sends the same cell on every turn of a run, in the peer's dialect; the REPL
state decides what it does (count, search, fan out, finish), so a right answer proves the code
ran over the corpus in the peer's REPL, and iteration counting does not depend on any peer's
prompt wording.
"""

from __future__ import annotations

import os
import statistics
import string
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tests.support.model_server import RecordedCall, count_tokens, peak_in_flight

NEEDLE = "K7Q2ZX9"
FANOUT_LATENCY = 0.5
SMALL_CORPUS_CHARS = 100_000
TOKENS_ITERATIONS = 12
TOKENS_SLICE = 1000


class Dialect(Protocol):
    """How the scripted model writes to one peer (a `bench/peer_*.py` module)."""

    NAME: str

    def finish(self, expression: str) -> str: ...

    def fan_out(self, target: str, contexts: str, question: str) -> str: ...

    def reply(self, code: str) -> str: ...


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # iterations | fanout | needle | tokens
    question: str
    corpus: str  # a corpus name (see `corpus_sizes`)
    max_iterations: int
    expected: str
    cell: Callable[[Dialect], str]
    latency: float = 0.0
    size: int = 0  # iterations, sub-queries or megabytes


COUNTER = """
try:
    step += 1
except NameError:
    step = 1
$body
if step >= $n:
    $finish
"""

NEEDLE_CELL = """
try:
    found
except NameError:
    import re
    found = re.search(r"The secret code is (\\w+)", context).group(1)
    print(found)
else:
    $finish
"""

FANOUT_CELL = """
if context.startswith("part "):
    $answer_child
else:
    try:
        answers
    except NameError:
        parts = [f"part {i}" for i in range($k)]
        $fan_out
        print(len(answers))
    else:
        $count_right
"""


def cell_code(template: str, **parts: object) -> str:
    """Fill a cell template: a `$name` alone on a line takes a (possibly multi-line) block at
    that line's indentation, any other `$name` a value."""
    lines = []
    for line in template.strip("\n").splitlines():
        name = line.strip().removeprefix("$")
        if line.strip().startswith("$") and name in parts:
            lines.append(textwrap.indent(str(parts[name]), line[: len(line) - len(line.lstrip())]))
        else:
            lines.append(line)
    return string.Template("\n".join(lines)).substitute(parts)


def iterations(n: int) -> Workload:
    """n turns of a trivial cell with an instant model: what each iteration costs on its own."""

    def cell(d: Dialect) -> str:
        return cell_code(COUNTER, body="print(step)", n=n, finish=d.finish('f"done {step}"'))

    return Workload(f"iterations-{n}", "iterations", "Count the turns.", "small", n + 2, f"done {n}", cell, size=n)


def tokens(n: int = TOKENS_ITERATIONS) -> Workload:
    """n turns that each print a 1000-character slice: how the prompt grows with the transcript."""
    body = f"print(context[step * {TOKENS_SLICE}:(step + 1) * {TOKENS_SLICE}])"

    def cell(d: Dialect) -> str:
        return cell_code(COUNTER, body=body, n=n, finish=d.finish('f"done {step}"'))

    return Workload(f"tokens-{n}", "tokens", "Read a slice per turn.", "small", n + 2, f"done {n}", cell, size=n)


def needle(megabytes: int) -> Workload:
    """Find a sentence in a large corpus (turn 1), answer from the REPL variable (turn 2)."""

    def cell(d: Dialect) -> str:
        return cell_code(NEEDLE_CELL, finish=d.finish("found"))

    name = f"needle-{megabytes}mb"
    return Workload(name, "needle", "What is the secret code?", name, 4, NEEDLE, cell, size=megabytes)


def fanout(k: int) -> Workload:
    """Turn 1 fans out k recursive sub-queries (each a child RLM answering from its own REPL in
    one turn), turn 2 counts the right answers. Ideal makespan: 3 model calls."""

    def cell(d: Dialect) -> str:
        return cell_code(FANOUT_CELL, k=k, answer_child=d.finish('"answer " + context'),
                         fan_out=d.fan_out("answers", "parts", "sub"),
                         count_right=d.finish("str(sum(a == 'answer ' + p for a, p in zip(answers, parts)))"))  # fmt: skip

    return Workload(f"fanout-{k}", "fanout", "Fan out.", "small", 4, str(k), cell, FANOUT_LATENCY, k)


def workloads(quick: bool, sizes: list[int]) -> list[Workload]:
    if quick:
        return [iterations(5), fanout(8), needle(sizes[0]), tokens(6)]
    return [iterations(10), fanout(8), fanout(32), *(needle(mb) for mb in sizes), tokens()]


def corpus_sizes(chosen: list[Workload]) -> dict[str, int]:
    """Corpus name -> target characters, for the corpora the chosen workloads read."""
    needed = {w.corpus for w in chosen}
    sizes = {"small": SMALL_CORPUS_CHARS} if "small" in needed else {}
    sizes.update({w.corpus: w.size * 1_000_000 for w in chosen if w.kind == "needle"})
    return sizes


def _prompt_text(call: RecordedCall) -> str:
    return "".join(f"{role}\n{text}\n" for role, text in call.request.transcript())


def _prompt_tokens(call: RecordedCall) -> int:
    return sum(count_tokens(text) for _, text in call.request.transcript())


def _repeated_prefix(previous: str, current: str) -> float:
    """The share of a request that repeats the previous request's start: what a prompt cache reuses."""
    return len(os.path.commonprefix([previous, current])) / len(current) if current else 0.0


def measure(workload: Workload, calls: list[RecordedCall], started: float, ended: float) -> dict[str, Any]:
    """Figures of one run from the server's log; `started`/`ended` bracket the peer's query."""
    answered = [c.answered or c.received for c in calls]
    figures: dict[str, Any] = {
        "calls": len(calls), "query_s": ended - started, "first_call_s": calls[0].received - started,
        "first_prompt_chars": len(_prompt_text(calls[0])), "first_prompt_tokens": _prompt_tokens(calls[0]),
    }  # fmt: skip
    if workload.kind == "iterations":
        gaps = [nxt.received - done for done, nxt in zip(answered, calls[1:], strict=False)]
        figures["overhead_ms"] = statistics.median(gaps) * 1000
        figures["overhead_mean_ms"] = statistics.mean(gaps) * 1000
        figures["model_ms"] = statistics.median(a - c.received for a, c in zip(answered, calls, strict=True)) * 1000
    elif workload.kind == "fanout":
        subs = calls[1:-1]  # the root's two turns come first and last
        figures["makespan_s"] = max(answered) - calls[0].received
        figures["sub_phase_s"] = max(c.answered or c.received for c in subs) - min(c.received for c in subs)
        figures["peak_in_flight"] = peak_in_flight(calls)
    elif workload.kind == "tokens":
        texts = [_prompt_text(c) for c in calls]
        per_call = [_prompt_tokens(c) for c in calls]
        figures.update(prompt_tokens_mean=statistics.mean(per_call), prompt_tokens_first=per_call[0],
                       prompt_tokens_last=per_call[-1], prompt_tokens_total=sum(per_call),
                       repeated_prefix_pct=100 * statistics.mean(
                           _repeated_prefix(a, b) for a, b in zip(texts, texts[1:], strict=False)))  # fmt: skip
    return figures
