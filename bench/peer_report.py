"""The side-by-side table of a peers run: the median of each figure over its runs, and this
project's figure divided by each peer's."""

from __future__ import annotations

import statistics
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.peer_workloads import FANOUT_LATENCY

OURS = "ours"
# Per workload kind: (figure, label); `{n}` is the workload's size.
ROWS: dict[str, list[tuple[str, str]]] = {
    "iterations": [("overhead_ms", "{n} iterations: overhead per iteration, ms (median gap)")],
    "fanout": [
        ("makespan_s", f"fan-out {{n}} x {FANOUT_LATENCY} s: makespan, s (ideal {3 * FANOUT_LATENCY:g})"),
        ("sub_phase_s", "fan-out {n}: sub-query phase, s"),
        ("peak_in_flight", "fan-out {n}: peak model calls in flight"),
    ],
    "needle": [
        ("query_s", "needle {n} MB: time to answer, s"),
        ("first_call_s", "needle {n} MB: time to first model call, s"),
        ("peak_rss_mb", "needle {n} MB: peak RSS of the process tree, MB"),
        ("first_prompt_chars", "needle {n} MB: first prompt, chars"),
    ],
    "tokens": [
        ("prompt_tokens_mean", "{n} iterations: prompt tokens per iteration (mean)"),
        ("prompt_tokens_first", "{n} iterations: prompt tokens, first request"),
        ("prompt_tokens_last", "{n} iterations: prompt tokens, last request"),
        ("repeated_prefix_pct", "{n} iterations: request repeating the previous one, % (cacheable)"),
    ],
}


def medians(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(peer, workload) -> median of every numeric figure over the runs that answered right,
    with `ok`/`runs` counts and the first error."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["peer"], run["workload"]), []).append(run)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, group in groups.items():
        good = [r for r in group if r["ok"]]
        figures = {name for r in good for name, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        out[key] = {name: statistics.median(r[name] for r in good if name in r) for name in figures}
        out[key].update(ok=len(good), runs=len(group), error=next((r["error"] for r in group if not r["ok"]), None))
    return out


def fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"


def cell(summary: dict[str, Any] | None, figure: str) -> str:
    if summary is None:
        return ""
    if not summary["ok"]:
        return "failed"
    shown = fmt(summary[figure]) if figure in summary else "n/a"
    return shown if summary["ok"] == summary["runs"] else f"{shown} ({summary['ok']}/{summary['runs']})"


def ratio(ours: dict[str, Any] | None, other: dict[str, Any] | None, figure: str) -> str:
    if not ours or not other or not ours["ok"] or not other["ok"] or not other.get(figure):
        return ""
    return f"{ours[figure] / other[figure]:.2f}x"


def grid(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the side-by-side table: a figure per row, a peer per column, then
    `ours / peer` for every other peer."""
    peers = list(dict.fromkeys(run["peer"] for run in results["runs"]))
    others = [p for p in peers if p != OURS] if OURS in peers else []
    summary = medians(results["runs"])
    versions = results["meta"]["peers"]
    header = ["figure", *(f"{p} {versions.get(p, '')}".strip() for p in peers), *(f"{OURS} / {p}" for p in others)]
    rows = []
    for workload in results["workloads"]:
        kind, size = workload.split("-")
        for figure, label in ROWS[kind]:
            cells = [cell(summary.get((p, workload)), figure) for p in peers]
            ratios = [ratio(summary.get((OURS, workload)), summary.get((p, workload)), figure) for p in others]
            rows.append([label.format(n=size.removesuffix("mb")), *cells, *ratios])
    return header, rows


def title(meta: dict[str, Any]) -> str:
    return f"RLM peers, median of {meta['repeat']} run(s) each; {meta['date']}, commit {meta['commit']}"


def markdown(results: dict[str, Any]) -> str:
    """The table for docs/benchmarks.md."""
    header, rows = grid(results)
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def render(console: Console, results: dict[str, Any]) -> None:
    meta = results["meta"]
    header, rows = grid(results)
    table = Table(title=title(meta))
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(f"[red]{c}[/red]" if c.startswith("failed") else c for c in row))
    console.print(table)
    console.print(f"Machine: {meta['cores']} cores ({meta['cpu']}), {meta['memory_gb']} GB, Python {meta['python']}; "
                  f"load average {meta['load_start'][0]:.1f} at the start, {meta.get('load_end', [0])[0]:.1f} at the end"
                  " (a shared machine: read trends, not digits).")  # fmt: skip
    for note in meta["notes"]:
        console.print(f"Note: {note}.")
    for (peer, workload), summary in medians(results["runs"]).items():
        if summary["error"]:
            console.print(f"[red]{peer} {workload}: {summary['runs'] - summary['ok']} failed run(s): {summary['error']}[/red]")
