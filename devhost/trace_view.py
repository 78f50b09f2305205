"""A query's recursion tree on the terminal: each instance, its steps, its answer."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from shared.trace import StepRecord, TraceNode

PREVIEW = 160


def print_trace(console: Console, root: TraceNode) -> None:
    console.print(_node(root, Tree("")).children[0])


def _node(node: TraceNode, parent: Tree) -> Tree:
    result = node.result
    outcome = "[yellow]running[/]"
    if result is not None:
        outcome = "[red]failed[/]" if result.failed else f"[yellow]forced ({result.forced_reason or 'iterations'})[/]" if result.forced else "[green]answered[/]"
    meta = node.meta
    branch = parent.add(f"[bold]depth {meta.depth}[/] {escape(meta.instance_id)} {outcome}: {escape(_short(meta.question))}")
    for step in node.steps:
        branch.add(_step(step))
    if result is not None:
        branch.add(f"[bold]answer[/] {escape(_short(result.answer))}")
    for child in node.children:
        _node(child, branch)
    return parent


def _step(step: StepRecord) -> str:
    head = f"[cyan]{step.kind}[/] #{step.step} it {step.iteration}"
    if step.cell is not None:
        cell = step.cell
        detail = f"{cell.status}, {len(cell.pending)} pending" if cell.pending else cell.status
        output = (cell.stdout + cell.stderr).strip()
        return f"{head} {detail}" + (f": {escape(_short(output))}" if output else "")
    if step.code is not None:
        return f"{head} {step.code.count(chr(10)) + 1} lines of code: {escape(_short(step.code))}"
    if step.reply is not None:
        return f"{head}: {escape(_short(step.reply))}"
    return head


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"
