"""What `ask` shows on a terminal while a query runs, and nothing off a terminal."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from devhost.progress import ProgressView
from shared.step_models import Progress


def running_status() -> dict:
    """A query that started 42 s ago (from when the test runs, not when the suite collected it)."""
    return Progress(
        phase="sub-queries", depth=0, max_depth=2, iteration=3, max_iterations=20, sub_queries_running=6, sub_queries_done=2,
        tokens=934, cost=0.0123, started_at=(datetime.now(UTC) - timedelta(seconds=42)).isoformat(), elapsed_seconds=41.0,
        step=7, code="parts = context.split('\\n\\n## ')", trace_id="0af7651916cd43dd8448eb211c80319c",
    ).model_dump()  # fmt: skip


def shown(status: dict) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, record=True, width=120)
    with ProgressView(console, "query-7") as view:
        view.update(status)
        view.live.refresh()
    return console.export_text()


def test_live_progress_shows_the_query_state_on_a_terminal() -> None:
    text = shown(running_status())
    for part in ("query-7", "sub-queries", "3 / 20", "recurse to depth 2", "6 running, 2 done", "934", "0.0123",
                 "#7", "parts = context.split", "0af7651916cd43dd8448eb211c80319c"):  # fmt: skip
        assert part in text
    elapsed = float(text.split("elapsed")[-1].split()[0])  # the last frame drawn
    assert 42 <= elapsed < 600  # counted from the start, not frozen at the last update


def test_progress_without_the_newer_fields_still_shows() -> None:
    text = shown({"phase": "generating", "iteration": 1, "max_iterations": 5})
    assert "generating" in text and "1 / 5" in text and "elapsed" in text and "cost" not in text


def test_no_live_display_off_a_terminal() -> None:
    output = io.StringIO()
    with ProgressView(Console(file=output, force_terminal=False), "query-7") as view:
        view.update(running_status())
    assert output.getvalue() == ""
