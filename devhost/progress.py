"""Live progress of a query on a terminal, from the orchestration's custom status."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from shared.models import QueryResult


class ProgressView:
    """Shows phase, iteration, depth, sub-queries and tokens; a no-op off a terminal."""

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
        table.add_row("depth", f"{status.get('depth', 0)} (sub-queries recurse to depth {status.get('max_depth', '?')})")
        table.add_row("sub-queries", f"{status.get('sub_queries_running', 0)} running, {status.get('sub_queries_done', 0)} done")
        table.add_row("tokens", str(status.get("tokens", 0)))
        return table


def print_result(console: Console, result: QueryResult) -> None:
    title = "Answer (forced at the iteration limit)" if result.forced else "Answer"
    console.print(Panel(Markdown(result.answer), title=title, border_style="yellow" if result.forced else "green"))
    if result.answer_key:
        console.print(f"[dim]The answer was long; the whole text is in payloads/{result.answer_key}[/dim]")
    if result.sources:
        console.print("Sources: " + "; ".join(s.title for s in result.sources))
    calls = sum(u.model_calls for u in result.usage.values())
    tokens = sum(u.prompt_tokens + u.completion_tokens for u in result.usage.values())
    console.print(
        f"[dim]{result.iterations} iterations, {result.sub_queries} sub-queries, {calls} model calls, "
        f"{tokens} tokens, {result.duration_seconds:.1f} s; instance {result.instance_id}; trace {result.trace}[/dim]"
    )
