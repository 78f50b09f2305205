"""`bench/peers.py`'s own measuring and reporting (the bench itself prints numbers; nothing here
asserts a timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from bench.peer_report import markdown, render
from bench.peer_workloads import fanout, iterations, measure, tokens
from tests.support.model_server import RecordedCall, ScriptedRequest

REPO = Path(__file__).resolve().parent.parent


def call(received: float, answered: float, *messages: tuple[str, str]) -> RecordedCall:
    request = ScriptedRequest(path="/chat/completions", query="", model="m", stream=False, include_usage=False,
                              headers={}, body={}, messages=[{"role": r, "content": c} for r, c in messages])  # fmt: skip
    return RecordedCall(request=request, received=received, answered=answered)


def test_figures_come_from_the_server_log() -> None:
    steps = [call(t, t + 0.01, ("system", "s"), ("user", "q")) for t in (1.0, 1.11, 1.22, 1.43)]
    figures = measure(iterations(4), steps, started=0.5, ended=1.5)
    assert figures["calls"] == 4 and figures["first_call_s"] == 0.5
    assert round(figures["overhead_ms"]) == 100  # gaps of 100, 100 and 200 ms after each reply
    assert round(figures["overhead_mean_ms"]) == 133

    root, *children, last = [call(0.0, 0.5), *(call(0.6 + i * 0.1, 1.1 + i * 0.1) for i in range(3)), call(1.5, 2.0)]
    figures = measure(fanout(3), [root, *children, last], started=0.0, ended=2.0)
    assert figures["makespan_s"] == 2.0 and figures["peak_in_flight"] == 3
    assert round(figures["sub_phase_s"], 6) == 0.7

    growing = [call(0, 0, ("system", "s"), ("user", "q")), call(1, 1, ("system", "s"), ("user", "q"), ("assistant", "a b"))]
    figures = measure(tokens(2), growing, started=0.0, ended=1.0)
    assert (figures["prompt_tokens_first"], figures["prompt_tokens_last"]) == (2, 4)
    assert 0 < figures["repeated_prefix_pct"] < 100


def test_report_shows_medians_ratios_and_failures() -> None:
    def run(peer: str, repeat: int, overhead: float | None) -> dict:
        if overhead is None:
            return {"peer": peer, "workload": "iterations-10", "repeat": repeat, "ok": False, "error": "exit 1: boom"}
        return {"peer": peer, "workload": "iterations-10", "repeat": repeat, "ok": True, "overhead_ms": overhead}

    results = {
        "meta": {"date": "2026-01-01", "commit": "abc", "repeat": 3, "peers": {"ours": "abc", "rlms": "0.1.3"},
                 "cores": 2, "cpu": "cpu", "memory_gb": 24, "python": "3.11", "load_start": [1, 1, 1],
                 "load_end": [2, 2, 2], "notes": []},
        "workloads": ["iterations-10"],
        "runs": [run("ours", 0, 30), run("ours", 1, 50), run("ours", 2, 40), run("rlms", 0, 10), run("rlms", 1, None)],
    }  # fmt: skip
    console = Console(record=True, width=200)
    render(console, results)
    text = console.export_text()
    row = next(line for line in text.splitlines() if "overhead per iteration" in line)
    assert "40" in row and "10 (1/2)" in row and "4.00x" in row
    assert "rlms iterations-10: 1 failed run(s): exit 1: boom" in text
    assert markdown(results).splitlines()[2] == (
        "| 10 iterations: overhead per iteration, ms (median gap) | 40 | 10 (1/2) | 4.00x |"
    )


def test_quick_run_of_this_project_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.peers", "--quick", "--only", "ours", "--json-out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    runs = {run["workload"]: run for run in results["runs"]}
    assert set(runs) == {"iterations-5", "fanout-8", "needle-1mb", "tokens-6"}
    assert all(run["ok"] and run["peak_rss_mb"] > 0 for run in runs.values())
    assert runs["iterations-5"]["calls"] == 5
    assert runs["fanout-8"]["calls"] == 10  # the root's two turns and one turn per child
    assert runs["needle-1mb"]["first_prompt_chars"] < 20_000  # the 1 MB corpus stays out of the prompt
    assert runs["tokens-6"]["prompt_tokens_last"] > runs["tokens-6"]["prompt_tokens_first"]
    for label in ("overhead per iteration", "makespan", "peak RSS", "prompt tokens per iteration"):
        assert label in done.stdout
