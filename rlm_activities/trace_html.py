"""A readable HTML view of a query's recursion tree, for people rather than programs."""

from __future__ import annotations

from html import escape

from shared.trace import StepRecord, TraceNode

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}
details{border-left:3px solid #8ab;margin:.4rem 0 .4rem 1rem;padding-left:.8rem}
summary{cursor:pointer}pre{background:#f4f6f8;padding:.6rem;overflow-x:auto;white-space:pre-wrap}
.kind{font-weight:600;color:#246}.err{color:#a22}.dim{color:#667}
"""


def render_trace_html(root: TraceNode) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>RLM trace {escape(root.meta.instance_id)}</title>"
        f"<style>{STYLE}</style></head><body><h1>RLM trace</h1>{_node(root)}</body></html>"
    )


def _node(node: TraceNode) -> str:
    meta, result = node.meta, node.result
    outcome = "running"
    if result is not None:
        outcome = "failed" if result.failed else f"forced answer ({result.forced_reason or 'iterations'})" if result.forced else "answered"
        if result.cost is not None:
            outcome += f" · cost {result.cost:.3g}"
    parts = [
        f"<details open><summary><b>depth {meta.depth}</b> · {escape(meta.instance_id)} · {outcome}"
        f" · <span class='dim'>{meta.context_chars} chars of context</span></summary>",
        f"<p><b>Question:</b> {escape(meta.question)}</p>",
    ]
    parts += [_step(s) for s in node.steps]
    parts += [_node(child) for child in node.children]
    if result is not None:
        parts.append(f"<p><b>Answer:</b></p><pre>{escape(result.answer)}</pre>")
        if result.error:
            parts.append(f"<p class='err'>{escape(result.error)}</p>")
    parts.append("</details>")
    return "".join(parts)


def _step(step: StepRecord) -> str:
    head = f"<span class='kind'>{step.kind}</span> · step {step.step} · iteration {step.iteration}"
    if step.usage is not None:
        usage = step.usage
        cost = f", cost {usage.cost:.3g}" if usage.cost is not None else ""
        head += (
            f" · <span class='dim'>{escape(step.model or '')}, {usage.prompt_tokens}+{usage.completion_tokens} tokens"
            f" ({usage.cached_tokens} cached){cost}</span>"
        )
    if step.cell is not None:
        pending = f", {len(step.cell.pending)} sub-queries pending" if step.cell.pending else ""
        head += f" · <span class='dim'>{step.cell.status}{pending}</span>"
    body = []
    if step.reply is not None:
        body.append(f"<pre>{escape(step.reply)}</pre>")
    if step.cell is not None:
        cell = step.cell
        body.append(f"<p>cell {escape(cell.cell_id)}: {cell.status}</p>")
        if cell.stdout or cell.stderr:
            body.append(f"<pre>{escape(cell.stdout)}{escape(cell.stderr)}</pre>")
        if cell.pending:
            body.append("<ul>" + "".join(f"<li>{p.kind}_query: {escape(p.question[:300])}</li>" for p in cell.pending) + "</ul>")
    if step.answers:
        body.append("<ul>" + "".join(f"<li>{escape(k)} → {escape(v[:300])}</li>" for k, v in step.answers.items()) + "</ul>")
    if step.error:
        body.append(f"<p class='err'>{escape(step.error)}</p>")
    return f"<details><summary>{head}</summary>{''.join(body)}</details>"
