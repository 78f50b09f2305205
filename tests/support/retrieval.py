"""Helpers for retrieval baseline tests: a corpus with a needle among look-alike documents,
scripts that answer only from the passages a baseline retrieved, and running a baseline
through the embedded host."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path
from typing import Any

from shared.retrieval.prompts import ANSWER_SYSTEM_PROMPT, REWRITE_SYSTEM_PROMPT
from tests.support.model_server import ScriptedRequest

TOPICS = "station river harbor ridge valley report wind snow tide fuel gauge survey supply road storm".split()
NEEDLE_TITLE = "Harbor master's log"
NEEDLE = "The vault's secret code is 4417."
PASSAGE = re.compile(r"^\[(\d+)\] (.+)$", re.MULTILINE)
CODE = re.compile(r"secret code is (\d+)")


def needle_documents(count: int = 40, seed: int = 3) -> list[dict[str, Any]]:
    """Documents of shuffled topic words; one of them, in the middle, holds the needle."""
    rng = random.Random(seed)
    documents = []
    for n in range(count):
        words = " ".join(rng.choice(TOPICS) for _ in range(300))
        documents.append({"id": f"doc-{n}", "title": f"Field report {n}", "content": f"{words}."})
    documents[count // 2] = {"id": "needle", "title": NEEDLE_TITLE, "content": f"{documents[count // 2]['content']} {NEEDLE}"}
    return documents


def is_answer(request: ScriptedRequest) -> bool:
    return request.system.strip() == ANSWER_SYSTEM_PROMPT.strip()


def is_rewrite(request: ScriptedRequest) -> bool:
    return request.system.strip() == REWRITE_SYSTEM_PROMPT.strip()


def passage_titles(request: ScriptedRequest) -> list[str]:
    return [title for _, title in PASSAGE.findall(request.prompt)]


def answer_from_passages(request: ScriptedRequest) -> str:
    """Answer only from the passages in the prompt: the code if one of them says it."""
    found = CODE.search(request.prompt)
    if found is None:
        return "The passages do not say."
    cited = next(n for n, title in PASSAGE.findall(request.prompt) if title == NEEDLE_TITLE)
    return f"The secret code is {found.group(1)} [{cited}]."


async def run_strategy(
    state_dir: Path,
    strategy: str,
    *,
    question: str,
    documents: list[dict[str, Any]],
    instance_id: str,
) -> tuple[Any, Any]:
    """Run one baseline in an EmbeddedHost over the real function app; return (status, host)."""
    from devhost import EmbeddedHost
    from function_app import app
    from rlm_activities import services
    from rlm_activities.retrieval import STRATEGY_ORCHESTRATOR
    from shared.llm import close_models
    from shared.models import QueryRequest
    from shared.retrieval.loop import strategy_task

    request = QueryRequest.model_validate({"question": question, "documents": documents})
    task = await asyncio.to_thread(strategy_task, request, strategy, instance_id, services.settings(), services.store())
    try:
        async with EmbeddedHost(app, state_dir=state_dir) as host:
            await host.start_new(STRATEGY_ORCHESTRATOR, input=task.model_dump(), instance_id=instance_id)
            status = await host.wait_for_completion(instance_id, timeout=240)
    finally:
        await close_models()
    return status, host
