"""What `ask` shows on a terminal while a query runs, and nothing off a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from devhost.progress import ProgressView
from shared.step_models import Progress

STATUS = Progress(
    phase="sub-queries", depth=0, max_depth=2, iteration=3, max_iterations=20, sub_queries_running=6, sub_queries_done=2, tokens=934
).model_dump()


def test_live_progress_shows_the_query_state_on_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, record=True, width=100)
    with ProgressView(console, "query-7") as view:
        view.update(STATUS)
        view.live.refresh()
    shown = console.export_text()
    for text in ("query-7", "sub-queries", "3 / 20", "recurse to depth 2", "6 running, 2 done", "934"):
        assert text in shown


def test_no_live_display_off_a_terminal() -> None:
    output = io.StringIO()
    with ProgressView(Console(file=output, force_terminal=False), "query-7") as view:
        view.update(STATUS)
    assert output.getvalue() == ""
