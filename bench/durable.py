"""Durable overhead through the embedded host, with the real Copilot CLI and a scripted model.

1. Per iteration: wall time of an N-iteration query split into model time (server log),
   the Copilot CLI turn around it (`CopilotModel.complete` minus the model), the rest of
   `generate_step` (transcript rebuild, trace write), `execute_cell` (sandbox),
   orchestrator episodes, and the rest (open/finish activities, engine, SQLite).
2. Replay: orchestrator `handle()` time per episode as the query goes on (10/20/50
   iterations): the median episode at iteration 5 and at the last iteration (the loop
   continues as new, so these stay close), plus the final episode's context replayed off-line.
3. Fan-out: makespan of K parallel sub-queries with 0.5 s model latency (1/8/32/128), the
   sub-query phase (first to last sub-level model call) and the peak of calls in flight.

Run: `.venv/bin/python -m bench.durable [--quick] [--json-out PATH] [--compare PATH]`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from devhost import EmbeddedHost
from devhost.functions import discover
from function_app import app
from rlm_activities import services
from rlm_activities.orchestrator import ORCHESTRATOR
from shared.config import get_settings
from shared.llm import CopilotModel, close_models
from shared.models import QueryRequest
from shared.starting import root_task
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import filler_corpus, iteration_of, question_of, repl

console = Console(width=None if Console().is_terminal else 140)
FANOUT_LATENCY = 0.5
REPLAYS = 20


class Probe:
    """Wraps the discovered orchestrator and activities (and `CopilotModel.complete`, for
    this process only) to time them from the outside."""

    def __init__(self) -> None:
        self.episodes: list[tuple[int, float, int]] = []  # (history events, seconds, iteration it reported)
        self.activities: dict[str, list[float]] = {}
        self.last_context: dict[str, str] = {}  # instance id -> last context JSON
        self._lock = threading.Lock()
        index = discover(app)
        self.handlers = {name: o.handler for name, o in index.orchestrators.items()}  # unwrapped
        for name, orchestrator in index.orchestrators.items():
            index.orchestrators[name] = dataclasses.replace(orchestrator, handler=self._timed_handler(orchestrator.handler))
        for name, activity in index.activities.items():
            index.activities[name] = dataclasses.replace(activity, fn=self._timed_activity(name, activity.fn, activity.is_async))
        complete = CopilotModel.complete
        CopilotModel.complete = self._timed_activity("copilot_complete", complete, True)  # type: ignore[method-assign]

    def reset(self) -> None:
        with self._lock:
            self.episodes, self.activities, self.last_context = [], {}, {}

    def _record(self, name: str, seconds: float) -> None:
        with self._lock:
            self.activities.setdefault(name, []).append(seconds)

    def _timed_handler(self, handler: Callable[[Any], str]) -> Callable[[Any], str]:
        def timed(context: Any) -> str:
            body = getattr(context, "body", context)
            started = time.perf_counter()
            reply = None
            try:
                reply = handler(context)
                return reply
            finally:
                elapsed = time.perf_counter() - started
                parsed = json.loads(body)
                progress = (json.loads(reply).get("customStatus") if reply else None) or {}
                with self._lock:
                    self.episodes.append((len(parsed["history"]), elapsed, progress.get("iteration", 0)))
                    self.last_context[parsed["instanceId"]] = body
        return timed

    def _timed_activity(self, name: str, fn: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        if is_async:
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self._record(name, time.perf_counter() - started)
            return timed_async

        def timed_sync(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._record(name, time.perf_counter() - started)
        return timed_sync


@asynccontextmanager
async def model_session(root: Path, name: str) -> AsyncIterator[ModelServer]:
    """A fresh scripted server with the environment (and cached services) pointed at it;
    its Copilot CLI is closed at the end so idle CLIs do not pile up."""
    with ModelServer() as server:
        os.environ.update({
            "MODEL_PROVIDER": "openai", "MODEL_BASE_URL": server.url, "MODEL_API_KEY": "bench-key",
            "COPILOT_HOME_DIR": str(root / "copilot-home"), "RLM_DATA_DIR": str(root / name / "data"),
        })
        get_settings.cache_clear()
        services.reset()
        try:
            yield server
        finally:
            await close_models()


async def run_once(state_dir: Path, question: str, instance_id: str, options: dict[str, Any]) -> float:
    """One query in a fresh host; seconds from start to completion (host start-up excluded)."""
    request = QueryRequest.model_validate({"question": question, "corpus": filler_corpus(20_000), "options": options})
    task = await asyncio.to_thread(root_task, request, instance_id, services.settings(), services.store())
    async with EmbeddedHost(app, state_dir=state_dir) as host:
        started = time.perf_counter()
        await host.start_new(ORCHESTRATOR, input=task.model_dump(), instance_id=instance_id)
        status = await host.wait_for_completion(instance_id, timeout=600)
        elapsed = time.perf_counter() - started
    if str(status.runtime_status) != "Completed":
        raise RuntimeError(f"{instance_id} ended {status.runtime_status}: {status.output}")
    return elapsed


def model_seconds(server: ModelServer, since: int) -> float:
    return sum((c.answered or c.received) - c.received for c in server.calls[since:])


async def iterations(probe: Probe, root: Path, n: int) -> tuple[dict[str, float], dict[str, float]]:
    """An n-iteration query of trivial cells with an instant model: overhead and replay."""
    async with model_session(root, f"iter{n}") as server:
        server.set_script(lambda r: repl('Final = "done"') if iteration_of(r) >= n else repl("print(1)"))
        await run_once(root / f"iter{n}" / "warm", "warm up", "warm", {"max_iterations": 1})
        probe.reset()
        mark = len(server.calls)
        wall = await run_once(root / f"iter{n}" / "state", "count to n", f"iterations-{n}", {"max_iterations": n})
        model = model_seconds(server, mark)
        generate = sum(probe.activities.get("generate_step", []))
        copilot = sum(probe.activities.get("copilot_complete", []))
        execute = sum(probe.activities.get("execute_cell", []))
        episodes = [s for _, s, _ in probe.episodes]
        by_iteration = {i: [s for _, s, at in probe.episodes if at == i] for i in (5, n)}
        context = probe.last_context[f"iterations-{n}"]
    replays = []
    for _ in range(REPLAYS):
        started = time.perf_counter()
        probe.handlers[ORCHESTRATOR](context)  # the SDK's handle() accepts the JSON text itself
        replays.append(time.perf_counter() - started)
    events = len(json.loads(context)["history"])
    ms = 1000 / n
    overhead = {
        "wall_ms": wall * ms, "model_ms": model * ms, "copilot_ms": (copilot - model) * ms,
        "generate_other_ms": (generate - copilot) * ms,
        "execute_ms": execute * ms, "orchestrator_ms": sum(episodes) * ms,
        "rest_ms": (wall - generate - execute - sum(episodes)) * ms,
    }
    at_5, at_last = (statistics.median(by_iteration[i]) * 1000 for i in (5, n))
    replay = {
        "events": events, "episodes": len(episodes), "mean_episode_ms": statistics.mean(episodes) * 1000,
        "episode_at_5_ms": at_5, "episode_at_last_ms": at_last, "last_over_5": at_last / at_5,
        "last_episode_ms": episodes[-1] * 1000, "replay_ms": statistics.median(replays) * 1000,
        "us_per_event": statistics.median(replays) * 1e6 / events,
    }
    return overhead, replay


async def fan_out(probe: Probe, root: Path, k: int) -> dict[str, float]:
    """A root that fans out k sub-queries in iteration 1 and answers in iteration 2."""
    def script(request: ScriptedRequest) -> str:
        if question_of(request) != "fan out":
            return repl('Final = "ok"')
        if iteration_of(request) == 1:
            return repl(f'answers = rlm_query_batch([("sub", f"part {{i}}") for i in range({k})])\nprint(len(answers))')
        return repl("Final = str(len(answers))")

    async with model_session(root, f"fan{k}") as server:
        server.set_script(script)
        await run_once(root / f"fan{k}" / "warm", "warm up", "warm", {"max_iterations": 1})
        server.set_latency(FANOUT_LATENCY)
        probe.reset()
        mark = len(server.calls)
        wall = await run_once(root / f"fan{k}" / "state", "fan out", f"fan-out-{k}", {"max_depth": 1, "max_iterations": 3})
        calls = server.calls[mark:]
        overlap = server.max_overlap()  # the warm-up made one call, so the peak is this run's
    ideal = 3 * FANOUT_LATENCY
    slowest = {name: max(probe.activities.get(name, [0.0])) for name in ("copilot_complete", "open_session")}
    subs = [c for c in calls if question_of(c.request) == "sub"]
    return {
        "makespan_s": wall, "ideal_s": ideal, "overhead_s": wall - ideal, "serial_s": len(calls) * FANOUT_LATENCY,
        "sub_phase_s": max(c.answered or c.received for c in subs) - min(c.received for c in subs),
        "model_calls": len(calls), "peak_overlap": overlap, "episodes": len(probe.episodes),
        "slowest_model_call_s": slowest["copilot_complete"], "slowest_open_s": slowest["open_session"],
    }


def table(title: str, rows: dict[str, dict[str, float]], key: str, columns: dict[str, str]) -> Table:
    out = Table(title=title)
    out.add_column(key, justify="right")
    for label in columns.values():
        out.add_column(label, justify="right")
    for name, row in rows.items():
        out.add_row(name, *(fmt(row[c]) for c in columns))
    return out


def fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def flatten(results: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)):
            flat[f"{prefix}{key}"] = value
    return flat


def compare(previous_path: Path, results: dict[str, Any]) -> Table:
    before, now = flatten(json.loads(previous_path.read_text())), flatten(results)
    out = Table(title=f"Compared with {previous_path}")
    for column in ("metric", "before", "now", "delta"):
        out.add_column(column, justify="left" if column == "metric" else "right")
    for name in (n for n in now if n in before and not n.startswith("meta.")):
        old, new = before[name], now[name]
        delta = f"{(new - old) / old * 100:+.0f}%" if old else "n/a"
        out.add_row(name, fmt(old), fmt(new), delta)
    return out


async def main_async(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    probe = Probe()
    sizes, fans = ([5, 10], [1, 8]) if args.quick else ([10, 20, 50], [1, 8, 32, 128])
    results: dict[str, Any] = {"meta": {"cpus": os.cpu_count(), "quick": args.quick, "date": time.strftime("%Y-%m-%d")},
                               "iterations": {}, "replay": {}, "fanout": {}}
    for n in sizes if args.only != "fanout" else []:
        console.log(f"{n}-iteration query")
        results["iterations"][str(n)], results["replay"][str(n)] = await iterations(probe, root, n)
    for k in fans if args.only != "iterations" else []:
        console.log(f"fan-out of {k}")
        results["fanout"][str(k)] = await fan_out(probe, root, k)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5/10 iterations, fan-outs of 1/8")
    parser.add_argument("--only", choices=["iterations", "fanout"], help="run one part only")
    parser.add_argument("--json-out", type=Path, help="write the numbers here")
    parser.add_argument("--compare", type=Path, help="a previous --json-out file to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-durable-") as tmp:
        results = asyncio.run(main_async(args, Path(tmp)))
    console.print(table("Per iteration (ms), trivial cell, instant model", results["iterations"], "iterations", {
        "wall_ms": "wall", "model_ms": "model (server)", "copilot_ms": "Copilot CLI turn",
        "generate_other_ms": "generate_step other", "execute_ms": "execute_cell",
        "orchestrator_ms": "orchestrator", "rest_ms": "rest"}))
    console.print(table("Orchestrator replay per episode", results["replay"], "iterations", {
        "events": "events (final)", "episodes": "episodes", "mean_episode_ms": "mean ms",
        "episode_at_5_ms": "median ms at iteration 5", "episode_at_last_ms": "median ms at the last",
        "last_over_5": "last / 5", "replay_ms": f"final replay ms (median of {REPLAYS})",
        "us_per_event": "µs/event"}))
    console.print(table(f"Fan-out makespan, {FANOUT_LATENCY} s model latency", results["fanout"], "sub-queries", {
        "makespan_s": "makespan s", "ideal_s": "ideal s", "overhead_s": "over ideal s", "serial_s": "serial s",
        "sub_phase_s": "sub-query phase s", "model_calls": "model calls", "peak_overlap": "peak overlap",
        "episodes": "episodes", "slowest_model_call_s": "slowest model call s", "slowest_open_s": "slowest open_session s"}))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    if args.compare:
        console.print(compare(args.compare, results))


if __name__ == "__main__":
    main()
