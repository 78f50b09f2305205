"""Helpers for end-to-end RLM tests: corpora, scripts that make the sandbox do the work,
and running a query through the embedded host."""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.prompts import FORCED_FINAL_INSTRUCTION, LEAF_SYSTEM_PROMPT, ROOT_SYSTEM_PROMPT
from tests.support.model_server import DATETIME_PREFIX, ScriptedRequest

WORDS = "station river harbor ridge valley report wind snow tide fuel gauge survey supply road storm".split()
QUESTION_LINE = re.compile(r"^Question: (.*)$", re.MULTILINE)
ITERATION_LINE = re.compile(r"This is iteration (\d+) of (\d+)")
RAW_DATETIME = re.compile(rb"<current_datetime>.*?</current_datetime>", re.DOTALL)


def filler_corpus(target_chars: int, *, needle: str | None = None, seed: int = 7) -> str:
    """`## section` documents of random words, with the needle sentence in the middle."""
    rng = random.Random(seed)
    sections: list[str] = []
    size = 0
    while size < target_chars:
        body = " ".join(rng.choice(WORDS) for _ in range(400))
        section = f"## Document {len(sections)}\n{body}"
        sections.append(section)
        size += len(section) + 2
    if needle is not None:
        middle = len(sections) // 2
        sections[middle] += f"\nThe secret code is {needle}."
    return "\n\n".join(sections)


def repl(code: str) -> str:
    return f"Let me work in the REPL.\n```repl\n{code}\n```"


def question_of(request: ScriptedRequest) -> str:
    """The question of a loop's call: the first `Question:` line of its system message."""
    match = QUESTION_LINE.search(request.system)
    return match.group(1) if match else ""


def transcript_of(request: ScriptedRequest) -> str:
    """What a loop's call told the model after the fixed system prompt: the question and the
    earlier turns (the rest of the system message), then the instruction (the user message)."""
    return f"{request.system.removeprefix(ROOT_SYSTEM_PROMPT)}\n\n{request.prompt}"


def iteration_of(request: ScriptedRequest) -> int:
    match = ITERATION_LINE.search(request.prompt)
    return int(match.group(1)) if match else 0


def is_leaf(request: ScriptedRequest) -> bool:
    return request.system.strip() == LEAF_SYSTEM_PROMPT.strip()


def is_forced(request: ScriptedRequest) -> bool:
    return FORCED_FINAL_INSTRUCTION in request.prompt


def prefix_shares(bodies: Sequence[bytes]) -> list[float]:
    """For each pair of consecutive request bodies (as the provider received them), the
    common prefix over the length of the earlier one: what a prefix cache can reuse."""
    return [len(os.path.commonprefix([a, b])) / len(a) for a, b in zip(bodies, bodies[1:], strict=False)]


def without_timestamps(request: ScriptedRequest) -> list[dict[str, Any]]:
    """The messages with the CLI's `<current_datetime>` stamps taken out of user messages."""
    return [
        m | {"content": DATETIME_PREFIX.sub("", m["content"])} if m.get("role") == "user" and isinstance(m.get("content"), str) else m
        for m in request.messages
    ]


def raw_without_timestamps(request: ScriptedRequest) -> bytes:
    """The body exactly as the provider received it, with the CLI's `<current_datetime>` stamps
    emptied: what a retried or resumed call must send again byte for byte."""
    return RAW_DATETIME.sub(b"<current_datetime></current_datetime>", request.raw)


async def run_query(
    state_dir: Path,
    *,
    question: str,
    corpus: str | None = None,
    documents: list[dict[str, Any]] | None = None,
    options: dict[str, Any] | None = None,
    instance_id: str = "query-1",
    on_host: Callable[[Any, str], None] | None = None,
    on_status: Callable[[Any], None] | None = None,
) -> tuple[Any, Any]:
    """Start a query in an EmbeddedHost over the real function app; return (status, host)."""
    from devhost import EmbeddedHost
    from function_app import app
    from rlm_activities import services
    from rlm_activities.orchestrator import ORCHESTRATOR
    from shared.llm import close_models
    from shared.models import QueryRequest
    from shared.starting import root_task

    request = QueryRequest.model_validate(
        {"question": question, "corpus": corpus, "documents": documents, "options": options or {}}
    )
    task = await asyncio.to_thread(root_task, request, instance_id, services.settings(), services.store())
    try:
        async with EmbeddedHost(app, state_dir=state_dir) as host:
            await host.start_new(ORCHESTRATOR, input=task.model_dump(), instance_id=instance_id)
            status = await host.wait_for_completion(instance_id, on_status=on_status)
            if on_host is not None:
                on_host(host, instance_id)
    finally:
        await close_models()
    return status, host
