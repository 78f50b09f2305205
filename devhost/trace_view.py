"""A query's recursion tree on the terminal: each instance, its steps, its answer; with what
the trace records of each: the model used (and the one code asked for), usage and cost, the
notes the model was shown about its reply, why an answer was forced, and what a retrieval
baseline's steps built, searched for and found."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from devhost.progress import FORCED_BECAUSE, format_cost
from shared.models import TokenUsage
from shared.trace import InstanceMeta, RetrievalDetail, StepRecord, TraceNode

PREVIEW = 160
HITS_SHOWN = 5


def print_trace(console: Console, root: TraceNode) -> None:
    console.print(_node(root, Tree("")).children[0])


def _node(node: TraceNode, parent: Tree) -> Tree:
    result = node.result
    outcome = "[yellow]running[/]"
    if result is not None:
        outcome = "[red]failed[/]" if result.failed else f"[yellow]forced ({result.forced_reason or 'iterations'})[/]" if result.forced else "[green]answered[/]"
        if result.cost is not None:
            outcome += f" cost {format_cost(result.cost)}"
    meta = node.meta
    branch = parent.add(
        f"[bold]depth {meta.depth}[/] {escape(meta.instance_id)}{_who(meta)} {outcome}: {escape(_short(meta.question))}"
    )
    for step in node.steps:
        _step(step, branch)
    if result is not None:
        branch.add(f"[bold]answer[/] {escape(_short(result.answer))}")
        if result.error:
            branch.add(f"[red]error[/] {escape(_short(result.error))}")
    for child in node.children:
        _node(child, branch)
    return parent


def _who(meta: InstanceMeta) -> str:
    """The strategy, when not RLM, and the model (with the one code asked for, when it differs)."""
    parts = [meta.strategy] if meta.strategy != "rlm" else []
    if meta.model:
        parts.append(_model(meta.model, meta.requested_model))
    return f" [dim]({escape(', '.join(parts))})[/]" if parts else ""


def _model(used: str, requested: str | None) -> str:
    return f"{used}, asked for {requested}" if requested and requested != used else used


def _step(step: StepRecord, branch: Tree) -> None:
    head = f"[cyan]{step.kind}[/] #{step.step} it {step.iteration}"
    if step.forced_reason:
        head += f" [yellow]forced {FORCED_BECAUSE.get(step.forced_reason, step.forced_reason)}[/]"
    if step.model:
        head += f" [dim]{escape(_model(step.model, step.requested_model))}[/]"
    if step.usage is not None and step.usage.model_calls:
        head += f" [dim]{_usage(step.usage)}[/]"
    if step.cell is not None:
        cell = step.cell
        detail = f"{cell.status}, {len(cell.pending)} pending" if cell.pending else cell.status
        output = (cell.stdout + cell.stderr).strip()
        line = f"{head} {detail}" + (f": {escape(_short(output))}" if output else "")
    elif step.code is not None:
        line = f"{head} {step.code.count(chr(10)) + 1} lines of code: {escape(_short(step.code))}"
    elif step.reply is not None:
        line = f"{head}: {escape(_short(step.reply))}"
    else:
        line = head
    shown = branch.add(line)
    for note in step.notes:
        shown.add(f"[magenta]told the model[/] {escape(_short(note))}")
    if step.retrieval is not None:
        _retrieval(step.retrieval, shown)
    if step.error:
        shown.add(f"[red]error[/] {escape(_short(step.error))}")


def _usage(usage: TokenUsage) -> str:
    cached = f" ({usage.cached_tokens} cached)" if usage.cached_tokens else ""
    cost = f", cost {format_cost(usage.cost)}" if usage.cost is not None else ""
    return f"{usage.prompt_tokens}+{usage.completion_tokens} tokens{cached}{cost}"


def _retrieval(detail: RetrievalDetail, shown: Tree) -> None:
    if detail.built or detail.reused:
        shown.add(f"indexes built: {', '.join(detail.built) or 'none'}; reused: {', '.join(detail.reused) or 'none'}")
    if detail.query is not None:
        shown.add(f"query: {escape(_short(detail.query))}")
    for rank, hit in enumerate(detail.hits[:HITS_SHOWN], start=1):
        score = f" (score {hit.score:.3g})" if hit.score else ""
        shown.add(f"hit {rank}: [bold]{escape(hit.title)}[/] passage {hit.passage}{score}")
    if len(detail.hits) > HITS_SHOWN:
        shown.add(f"[dim]and {len(detail.hits) - HITS_SHOWN} more hits[/]")


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"
