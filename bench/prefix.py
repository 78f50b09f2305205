"""Prompt-cache friendliness of the root loop's requests, through the real Copilot CLI.

Prefix share: the common prefix of two consecutive root requests (their JSON bodies as
the provider receives them) over the length of the earlier one. Provider prompt caches
(OpenAI, Azure OpenAI, Anthropic) bill a repeated prefix at a fraction of the price.

The workload is a 12-iteration query whose cells each print ~1.7 KB. It runs once through
the product (the function app in an EmbeddedHost); its replies and cell outputs are then
sent again in the other request shapes, each through the real CLI to the scripted server:

- product: the transcript at the end of the verbatim system message, a fresh session per
  call, and only the instruction in the user message (behind the CLI's time stamp);
- one user message: the transcript in the user message behind the time stamp (the shape
  before this change);
- session: one Copilot session per query, each turn a new user message (the other
  design), while its CLI process lives; then with that process replaced mid-query, and
  with calls alternating between two workers' CLI processes, each rebuilding the session
  (the transcript as one message) when it has not seen the previous turn.

It also checks that a retried call sends what the failed attempt sent (time stamps aside).

Run: `.venv/bin/python -m bench.prefix [--iterations N] [--output-chars C] [--json-out PATH]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from copilot import CopilotClient, CopilotSession, RuntimeConnection
from rich.console import Console
from rich.table import Table

from devhost import EmbeddedHost
from function_app import app
from rlm_activities import services
from rlm_activities.orchestrator import ORCHESTRATOR
from shared.config import get_settings
from shared.llm import CopilotModel, close_models, find_copilot_cli
from shared.models import QueryRequest
from shared.prompts import ROOT_SYSTEM_PROMPT, TRANSCRIPT_HEADER, Turn, render_root_request
from shared.starting import root_task
from shared.trace import turns_from_steps
from tests.support.model_server import ModelServer, ScriptedError, ScriptedRequest
from tests.support.rlm import filler_corpus, is_leaf, iteration_of, prefix_shares, repl, without_timestamps

console = Console(width=None if Console().is_terminal else 140)
QUESTION = "Which documents mention the harbor gauge?"
INSTANCE = "prefix-bench"


class Workload:
    """The product run's transcript, to send again in the other shapes."""

    def __init__(self, iterations: int, context_chars: int, sections: int, turns: list[Turn]) -> None:
        self.iterations = iterations
        self.context_chars = context_chars
        self.sections = sections
        self.turns = turns

    def request(self, iteration: int) -> Any:
        return render_root_request(
            question=QUESTION, context_chars=self.context_chars, section_count=self.sections, iteration=iteration,
            max_iterations=self.iterations, turns=self.turns[: iteration - 1],
        )  # fmt: skip

    def first_message(self) -> str:
        """The session design's first user message: the task, then the first instruction."""
        task = self.request(1).system.removeprefix(ROOT_SYSTEM_PROMPT).lstrip()
        return f"{task.removeprefix(TRANSCRIPT_HEADER).lstrip()}\n\n{self.request(1).prompt}"

    def next_message(self, iteration: int) -> str:
        """The session design's later messages: the last cell's output, then the instruction."""
        turn = self.turns[iteration - 2]
        return f"--- Iteration {iteration - 1}: REPL output ---\n{turn.output}\n\n{self.request(iteration).prompt}"


def cell_code(iteration: int, last: int, output_chars: int) -> str:
    if iteration >= last:
        return repl('Final = "done"')
    start = iteration * output_chars
    return repl(f"print(context[{start}:{start + output_chars}])")


def set_environment(server: ModelServer, root: Path) -> None:
    os.environ.update({
        "MODEL_PROVIDER": "openai", "MODEL_BASE_URL": server.url, "MODEL_API_KEY": "bench-key",
        "COPILOT_HOME_DIR": str(root / "copilot-home"), "RLM_DATA_DIR": str(root / "data"),
    })  # fmt: skip
    get_settings.cache_clear()
    services.reset()


async def run_product(root: Path, iterations: int, output_chars: int, fail_at: int | None = None) -> tuple[ModelServer, Workload]:
    """The query through the function app; `fail_at` fails that iteration's first attempt (HTTP 400)."""
    failed: set[int] = set()

    def script(request: ScriptedRequest) -> Any:
        n = iteration_of(request)
        if n == fail_at and n not in failed:
            failed.add(n)
            return ScriptedError(400, "scripted failure, retried by the activity's retry policy")
        return cell_code(n, iterations, output_chars)

    server = ModelServer(script).start()
    set_environment(server, root)
    corpus = filler_corpus(max(200_000, (iterations + 1) * output_chars))
    request = QueryRequest(question=QUESTION, corpus=corpus, options={"max_iterations": iterations})
    task = await asyncio.to_thread(root_task, request, INSTANCE, services.settings(), services.store())
    try:
        async with EmbeddedHost(app, state_dir=root / "state") as host:
            await host.start_new(ORCHESTRATOR, input=task.model_dump(), instance_id=INSTANCE)
            status = await host.wait_for_completion(INSTANCE, timeout=900)
    finally:
        await close_models()
    if str(status.runtime_status) != "Completed":
        raise RuntimeError(f"the benchmark query ended {status.runtime_status}: {status.output}")
    steps = services.traces().steps(INSTANCE, INSTANCE)
    meta = services.traces().metas(INSTANCE)[0]
    sections = len(corpus.split("\n\n## "))
    return server, Workload(iterations, meta.context_chars, sections, turns_from_steps(steps, task.truncate_chars))


def root_bodies(server: ModelServer) -> list[bytes]:
    return [c.request.raw for c in server.calls if c.status == 200 and not is_leaf(c.request)]


async def fresh_sessions(work: Workload, root: Path, in_system: bool) -> tuple[list[bytes], list[float]]:
    """A fresh session per call (the product's transport), the transcript at the end of the
    system message or in the user message."""
    with ModelServer(replies(work)) as server:
        set_environment(server, root)
        model = CopilotModel(get_settings())
        await model.start()
        seconds = []
        try:
            for n in range(1, work.iterations + 1):
                request = work.request(n)
                system, prompt = (request.system, request.prompt) if in_system else (ROOT_SYSTEM_PROMPT, request.transcript)
                started = time.perf_counter()
                await model.complete(model="bench", system=system, prompt=prompt)
                seconds.append(time.perf_counter() - started)
        finally:
            await model.aclose()
        return root_bodies(server), seconds


def replies(work: Workload) -> Callable[[ScriptedRequest], str]:
    """The product run's replies again, in order (a session's history must hold the same turns)."""
    texts = [t.reply for t in work.turns] + [repl('Final = "done"')]
    counter = iter(range(10**6))
    return lambda _: texts[min(next(counter), len(texts) - 1)]


class Worker:
    """One worker process's CLI, keeping a session per query while it lives."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home
        self.client: CopilotClient | None = None
        self.session: CopilotSession | None = None
        self.seen = 0  # the turns this worker's session holds

    async def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.client = CopilotClient(
            connection=RuntimeConnection.for_stdio(path=find_copilot_cli()), mode="empty", base_directory=str(self.home),
            working_directory=str(self.home), use_logged_in_user=False, log_level="error",
        )  # fmt: skip
        await self.client.start()
        self.session, self.seen = None, 0

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.stop()
            self.client = None

    async def send(self, work: Workload, iteration: int) -> None:
        """The turn as a new message if the session holds every earlier turn, else a rebuilt session."""
        assert self.client is not None
        if self.session is None or self.seen != iteration - 1:
            self.session = await self.client.create_session(
                model="bench", provider={"type": "openai", "base_url": self.url, "api_key": "bench-key"},
                system_message={"mode": "replace", "content": ROOT_SYSTEM_PROMPT}, available_tools=[],
            )  # fmt: skip
            message = work.first_message() if iteration == 1 else work.request(iteration).transcript
        else:
            message = work.next_message(iteration)
        await self.session.send_and_wait(message, timeout=120)
        self.seen = iteration


async def session_shape(work: Workload, root: Path, workers: int, restart_at: int | None) -> tuple[list[bytes], list[float]]:
    """`workers` CLI processes taking turns; `restart_at` replaces the first one's process before that call."""
    with ModelServer(replies(work)) as server:
        pool = [Worker(server.url, root / f"worker-{w}") for w in range(workers)]
        for worker in pool:
            await worker.start()
        seconds = []
        try:
            for n in range(1, work.iterations + 1):
                worker = pool[(n - 1) % workers]
                if n == restart_at:
                    await worker.stop()
                    await worker.start()
                started = time.perf_counter()
                await worker.send(work, n)
                seconds.append(time.perf_counter() - started)
        finally:
            for worker in pool:
                await worker.stop()
        return root_bodies(server), seconds


async def session_retry(work: Workload, root: Path) -> bool:
    """The session design's retry: turn 3 fails, then is sent again in the same session."""
    fail = {"left": 1}

    def script(request: ScriptedRequest) -> Any:
        if len(request.texts("user")) == 3 and fail["left"]:
            fail["left"] -= 1
            return ScriptedError(400, "scripted failure")
        return work.turns[min(len(request.texts("user")) - 1, len(work.turns) - 1)].reply

    with ModelServer(script) as server:
        worker = Worker(server.url, root / "retry-worker")
        await worker.start()
        try:
            for n in (1, 2, 3):
                try:
                    await worker.send(work, n)
                except Exception:  # noqa: BLE001 - the scripted failure; the retry follows
                    await worker.send(work, n)
        finally:
            await worker.stop()
        first, retry = (c.request for c in server.calls if len(c.request.texts("user")) >= 3)
        return without_timestamps(first) == without_timestamps(retry)


def product_retry_identical(server: ModelServer, fail_at: int) -> bool:
    attempts = [c.request for c in server.calls if not is_leaf(c.request) and iteration_of(c.request) == fail_at]
    return len(attempts) == 2 and without_timestamps(attempts[0]) == without_timestamps(attempts[1])


def summarize(bodies: list[bytes], seconds: list[float] | None = None) -> dict[str, float]:
    shares = prefix_shares(bodies)
    row = {
        "calls": len(bodies),
        "mean_share": statistics.fmean(shares),
        "first_share": shares[0],
        "last_share": shares[-1],
        "min_share": min(shares),
        "last_body_kb": len(bodies[-1]) / 1024,
    }
    if seconds:
        row["ms_per_call"] = statistics.fmean(seconds) * 1000
    return row


async def main_async(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    console.log(f"product: {args.iterations}-iteration query through the function app")
    server, work = await run_product(root / "product", args.iterations, args.output_chars)
    server.stop()
    calls = [c for c in server.calls if not is_leaf(c.request)]
    prompt = sum(c.usage["prompt_tokens"] for c in calls if c.usage)
    cached = sum(c.usage["prompt_tokens_details"]["cached_tokens"] for c in calls if c.usage)
    outputs = [len(t.output or "") for t in work.turns[:-1]]  # the last turn set Final: no request shows it
    rows: dict[str, dict[str, float]] = {"product: transcript in the system message": summarize(root_bodies(server))}
    rows["product: transcript in the system message"]["cached_prompt_share"] = cached / prompt
    console.log("a fresh session per call")
    rows["same, sent again: transcript in the system message"] = summarize(*await fresh_sessions(work, root / "sys", True))
    rows["transcript in one user message (before)"] = summarize(*await fresh_sessions(work, root / "one", False))
    console.log("one session per query")
    rows["session, one CLI process"] = summarize(*await session_shape(work, root / "s1", 1, None))
    rows["session, CLI replaced at iteration 7"] = summarize(*await session_shape(work, root / "s2", 1, 7))
    rows["session, calls alternate between 2 workers"] = summarize(*await session_shape(work, root / "s3", 2, None))
    console.log("retries")
    fail_at = 3
    retried, _ = await run_product(root / "retry", min(args.iterations, 4), args.output_chars, fail_at=fail_at)
    retried.stop()
    return {
        "meta": {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "iterations": args.iterations,
                 "mean_output_chars": statistics.fmean(outputs) if outputs else 0},
        "shapes": rows,
        "retry_identical": {"product": product_retry_identical(retried, fail_at), "session": await session_retry(work, root)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--output-chars", type=int, default=1700, help="what each cell prints")
    parser.add_argument("--json-out", type=Path, help="write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-prefix-") as tmp:
        results = asyncio.run(main_async(args, Path(tmp)))
    meta = results["meta"]
    out = Table(title=f"Prefix share of consecutive root requests, {meta['iterations']} iterations, "
                      f"~{meta['mean_output_chars']:.0f} chars of cell output each")  # fmt: skip
    columns = {
        "mean_share": "mean",
        "first_share": "first",
        "last_share": "last",
        "min_share": "min",
        "last_body_kb": "last body KB",
        "ms_per_call": "ms per call",
        "cached_prompt_share": "cached / prompt tokens",
    }
    out.add_column("shape")
    for label in columns.values():
        out.add_column(label, justify="right")
    for name, row in results["shapes"].items():
        out.add_row(name, *(f"{row[c]:.2f}" if c in row else "" for c in columns))
    console.print(out)
    for design, same in results["retry_identical"].items():
        console.print(f"retry sends what the failed attempt sent (time stamps aside), {design}: {'yes' if same else 'no'}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
