"""Properties of the REPL runtime: output capping, and replay by content-keyed recorded answers."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.sandbox.base import CellLimits
from shared.sandbox.local import LocalBackend
from shared.sandbox.runtime import Capped, request_key, sub_context_file, sub_context_sha

LIMITS = CellLimits(timeout_seconds=30, memory_mb=1024, output_max_chars=10_000)
cell_ids = itertools.count()


@given(st.integers(min_value=1, max_value=200), st.lists(st.text(max_size=80), max_size=30))
def test_capped_keeps_a_prefix_and_counts_the_rest(limit: int, writes: list[str]) -> None:
    sink = Capped(limit)
    for text in writes:
        sink.write(text)
    whole = "".join(writes)
    shown = sink.text()
    if len(whole) <= limit:
        assert shown == whole
    else:
        assert shown == whole[:limit] + f"\n[output truncated: {len(whole) - limit} more characters not shown]\n"


@given(st.text(min_size=64, max_size=64, alphabet="0123456789abcdef"))
def test_sub_context_file_names_carry_the_hash(sha: str) -> None:
    assert sub_context_sha(sub_context_file(sha)) == sha


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    context = tmp_path_factory.mktemp("ctx") / "context.txt"
    context.write_text("## T\nbody\n")
    backend = LocalBackend(LIMITS)
    backend.start("original", context)
    backend.start("replay", context)
    yield backend
    backend.close()


requests = st.lists(
    st.tuples(st.sampled_from(["q1", "q2", "weird \u00e9 \"quoted\"\n"]), st.one_of(st.none(), st.sampled_from(["a", "b", ""]))),
    min_size=1,
    max_size=10,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests, st.randoms(use_true_random=False))
def test_recorded_answers_replay_without_suspending(sandbox: LocalBackend, pairs: list[tuple[str, str | None]], rnd: random.Random) -> None:
    """Answers recorded under content keys satisfy a replay whatever order they are listed in across keys."""
    cell_id = f"p{next(cell_ids)}"
    code = f"import json\nout = rlm_query_batch({pairs!r})\nFinal = json.dumps(out)"
    first = sandbox.execute("original", cell_id, code, [])
    assert first["status"] == "suspended" and len(first["pending"]) == len(pairs)
    answers = {p["id"]: f"answer {i}" for i, p in enumerate(first["pending"])}
    done = sandbox.resume("original", cell_id, answers)
    assert done["status"] == "done"

    by_key: dict[str, list[str]] = {}
    for p in first["pending"]:
        key = request_key(p["kind"], p["question"], sub_context_sha(p["sub_context_file"]))
        by_key.setdefault(key, []).append(answers[p["id"]])
    recorded: list[list[str]] = []
    while by_key:
        key = rnd.choice(sorted(by_key))
        recorded.append([key, by_key[key].pop(0)])
        if not by_key[key]:
            del by_key[key]
    replayed = sandbox.execute("replay", cell_id, code, recorded)
    assert replayed["status"] == "done"
    assert replayed["final"] == done["final"]
