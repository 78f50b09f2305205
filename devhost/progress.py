"""Live progress of a query on a terminal, from the orchestration's custom status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from shared.models import QueryResult, TokenUsage

FORCED_BECAUSE = {
    "iterations": "at the iteration limit",
    "tokens": "when the token budget ran out",
    "cost": "when the cost budget ran out",
    "deadline": "at the deadline",
}


def format_cost(cost: float) -> str:
    """Three significant digits, in the price table's currency."""
    return f"{cost:.3g}"


class ProgressView:
    """Shows phase, iteration, the step running (with its first line of code), depth, sub-queries,
    tokens and cost against their budgets, elapsed time, the deadline and the trace id; a no-op
    off a terminal."""

    def __init__(self, console: Console, instance_id: str) -> None:
        self.console = console
        self.instance_id = instance_id
        self.live: Live | None = None

    def __enter__(self) -> ProgressView:
        if self.console.is_terminal:
            self.live = Live(self._render({}), console=self.console, refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def update(self, status: dict[str, Any] | None) -> None:
        if self.live is not None and isinstance(status, dict):
            self.live.update(self._render(status))

    def _render(self, status: dict[str, Any]) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_row(Text("RLM", style="bold cyan"), Text(self.instance_id, style="dim"))
        table.add_row("phase", str(status.get("phase", "starting")))
        table.add_row("iteration", f"{status.get('iteration', 0)} / {status.get('max_iterations', '?')}")
        if status.get("step"):
            table.add_row("step", _running(status))
        table.add_row("depth", f"{status.get('depth', 0)} (sub-queries recurse to depth {status.get('max_depth', '?')})")
        table.add_row("sub-queries", f"{status.get('sub_queries_running', 0)} running, {status.get('sub_queries_done', 0)} done")
        tokens = f"{status.get('tokens', 0)} ({status.get('cached_tokens', 0)} cached)"
        if status.get("max_tokens") is not None:
            tokens += f" of a budget of {status['max_tokens']}"
        table.add_row("tokens", tokens)
        if status.get("cost") is not None or status.get("max_cost") is not None:
            cost = format_cost(status["cost"]) if status.get("cost") is not None else "not priced"
            if status.get("max_cost") is not None:
                cost += f" of a budget of {format_cost(status['max_cost'])}"
            table.add_row("cost", cost)
        if status.get("deadline"):
            left = (datetime.fromisoformat(status["deadline"]) - datetime.now(UTC)).total_seconds()
            table.add_row("deadline", f"in {left:.0f} s" if left > 0 else "passed")
        if status.get("forced_reason"):
            table.add_row("answering", f"with what it has, {FORCED_BECAUSE.get(status['forced_reason'], status['forced_reason'])}")
        table.add_row("elapsed", f"{_elapsed(status):.1f} s")
        if status.get("trace_id"):
            table.add_row("trace", Text(str(status["trace_id"]), style="dim"))
        return table


def _running(status: dict[str, Any]) -> Text:
    """The step running now and, while a cell runs, the first line of its code."""
    text = Text(f"#{status['step']}")
    if status.get("code"):
        text.append("  ")
        text.append(str(status["code"]), style="green")
    return text


def _elapsed(status: dict[str, Any]) -> float:
    """Seconds since the query started, by this machine's clock (the status's own figure is
    as of its last update); the status's figure when the start is unknown."""
    started = status.get("started_at")
    try:
        return max((datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds(), 0.0) if started else 0.0
    except (TypeError, ValueError):
        return float(status.get("elapsed_seconds") or 0.0)


def print_result(console: Console, result: QueryResult) -> None:
    title = f"Answer (forced {FORCED_BECAUSE.get(result.forced_reason or 'iterations')})" if result.forced else "Answer"
    console.print(Panel(Markdown(result.answer), title=title, border_style="yellow" if result.forced else "green"))
    if result.answer_key:
        console.print(f"[dim]The answer was long; the whole text is in payloads/{result.answer_key}[/dim]")
    if result.sources:
        console.print("Sources: " + "; ".join(s.title for s in result.sources))
    used = sum(result.usage.values(), TokenUsage())
    cost = f", cost {format_cost(result.cost)}" if result.cost is not None else ""
    console.print(
        f"[dim]{result.iterations} iterations, {result.sub_queries} sub-queries, {used.model_calls} model calls, "
        f"{used.total_tokens} tokens ({used.cached_tokens} cached){cost}, {result.duration_seconds:.1f} s; "
        f"instance {result.instance_id}; trace {result.trace}[/dim]"
    )
    if result.trace_id:
        console.print(f"[dim]OpenTelemetry trace {result.trace_id} (Application Insights operation id)[/dim]")
