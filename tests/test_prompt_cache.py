"""Root requests are append-only, so a provider's prompt cache reuses all of each request but
its new turn: through the embedded host and the real Copilot CLI to the scripted server,
which reports cached tokens the way a provider's prefix cache does."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import pytest

from rlm_activities import services
from shared.models import QueryResult
from shared.prompts import ROOT_SYSTEM_PROMPT
from tests.support.model_server import ModelServer, RecordedCall, ScriptedError, ScriptedReply, ScriptedRequest
from tests.support.rlm import filler_corpus, is_leaf, iteration_of, prefix_shares, raw_without_timestamps, repl, run_query

pytestmark = pytest.mark.timeout(300)
ITERATIONS = 6
OUTPUT_CHARS = 1700


def printing(request: ScriptedRequest) -> str | ScriptedReply:
    """Each cell prints ~1.7 KB of the corpus; the last one sets Final."""
    n = iteration_of(request)
    if n >= ITERATIONS:
        return ScriptedReply(repl('Final = "done"'), reasoning_tokens=11)
    return ScriptedReply(repl(f"print(context[{n * OUTPUT_CHARS}:{(n + 1) * OUTPUT_CHARS}])"), reasoning_tokens=11)


def root_calls(server: ModelServer) -> list[RecordedCall]:
    return [c for c in server.calls if c.status == 200 and not is_leaf(c.request)]


def ask(state_dir: Path, **options: int) -> QueryResult:
    status, _ = asyncio.run(
        run_query(
            state_dir,
            question="What do the gauges say?",
            corpus=filler_corpus(50_000),
            options={"max_iterations": ITERATIONS, **options},
        )
    )
    assert str(status.runtime_status) == "Completed", status.output
    return QueryResult.model_validate(status.output)


@pytest.mark.parametrize("model_server", [printing], indirect=True)
def test_each_root_request_begins_with_the_previous_one(rlm_env: Path, model_server: ModelServer) -> None:
    result = ask(rlm_env)
    assert result.answer == "done" and result.iterations == ITERATIONS
    calls = root_calls(model_server)
    assert len(calls) == ITERATIONS
    for earlier, later in zip(calls, calls[1:], strict=False):
        old, new = earlier.request, later.request
        assert [m["role"] for m in new.messages] == ["system", "user"]
        assert new.system.startswith(old.system) and new.system.startswith(ROOT_SYSTEM_PROMPT)
        added = new.system[len(old.system) :]
        assert earlier.reply in added  # the new turn: the earlier reply, then what its cell printed
        assert len(new.prompt) < 100  # all that follows the CLI's time stamp is the short instruction
    shares = prefix_shares([c.request.raw for c in calls])
    assert min(shares) > 0.85 and statistics.fmean(shares) >= 0.9, shares


@pytest.mark.parametrize("model_server", [printing], indirect=True)
def test_cached_and_reasoning_tokens_are_captured_end_to_end(rlm_env: Path, model_server: ModelServer) -> None:
    result = ask(rlm_env)
    reported = [c.usage for c in root_calls(model_server) if c.usage]
    usage = result.usage["0"]
    assert usage.model_calls == ITERATIONS
    assert usage.prompt_tokens == sum(u["prompt_tokens"] for u in reported)
    assert usage.cached_tokens == sum(u["prompt_tokens_details"]["cached_tokens"] for u in reported)
    assert usage.cached_tokens > 0.7 * usage.prompt_tokens  # the prefix cache took most of every request after the first
    assert usage.reasoning_tokens == 11 * ITERATIONS
    assert usage.completion_tokens == sum(u["completion_tokens"] for u in reported)
    steps = services.traces().steps(result.instance_id, result.instance_id)
    generated = [s for s in steps if s.kind == "generate"]
    assert [s.usage.cached_tokens for s in generated if s.usage] == [
        u["prompt_tokens_details"]["cached_tokens"] for u in reported
    ]
    assert "What do the gauges say?" in generated[-1].prompt and f"iteration {ITERATIONS} of {ITERATIONS}" in generated[-1].prompt


@pytest.mark.parametrize("options", [{}, {"deadline_seconds": 600}], ids=["plain", "raced-with-a-deadline"])
def test_a_retried_call_sends_exactly_what_the_failed_attempt_sent(
    rlm_env: Path, model_server: ModelServer, options: dict[str, int]
) -> None:
    failed: list[int] = []

    def script(request: ScriptedRequest) -> str | ScriptedReply | ScriptedError:
        if iteration_of(request) == 3 and not failed:
            failed.append(3)
            return ScriptedError(400, "rejected once, then retried by the activity's retry policy")
        return printing(request)

    model_server.set_script(script)
    result = ask(rlm_env, **options)
    assert result.answer == "done" and not result.forced
    third = [c.request for c in model_server.calls if not is_leaf(c.request) and iteration_of(c.request) == 3]
    assert len(third) == 2
    assert raw_without_timestamps(third[0]) == raw_without_timestamps(third[1])  # the same bytes, stamps aside
    assert third[0].raw != third[1].raw  # only the CLI's time stamps differ
