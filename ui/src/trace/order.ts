// The order a reader follows an instance in: each step as it happened, and right after a
// cell that suspended, the sub-queries and model calls it fanned out to, so the resume
// that consumed their answers comes after them, never before.

import type { PendingRequest, StepRecord, TraceNode } from "../types";

export interface FanOutItem {
  /** Position of the request in its cell's fan-outs (the `k` of the child id). */
  index: number;
  request: PendingRequest;
  /** The sub-query run for it, once it has started. */
  child?: TraceNode;
  /** The single model call that answered it (llm_query, or rlm_query at max depth). */
  leaf?: StepRecord;
  /** Its answer, once the resume step handed it to the cell. */
  answer?: string;
}

export type Entry =
  | { type: "step"; step: StepRecord }
  | { type: "fanout"; after: StepRecord; items: FanOutItem[] };

/** The id the orchestrator gives the sub-query of request `k` in `iteration`. */
export function childId(parentId: string, iteration: number, k: number): string {
  return `${parentId}-${iteration}-${k}`;
}

export function orderedEntries(node: TraceNode): Entry[] {
  const steps = [...node.steps].sort((a, b) => a.step - b.step);
  const children = new Map(node.children.map((c) => [c.meta.instance_id, c]));
  const answers = new Map<string, string>();
  for (const step of steps) for (const [id, text] of Object.entries(step.answers ?? {})) answers.set(id, text);
  const placed = new Set<string>();
  const fannedOut = new Map<number, number>();
  const entries: Entry[] = [];

  steps.forEach((step, position) => {
    if (step.kind === "leaf") return;
    entries.push({ type: "step", step });
    const pending = step.cell?.status === "suspended" ? step.cell.pending : [];
    if (pending.length === 0) return;
    const first = fannedOut.get(step.iteration) ?? 0;
    fannedOut.set(step.iteration, first + pending.length);
    const leaves = leavesAfter(steps, position);
    const items = pending.map((request, j): FanOutItem => {
      const index = first + j;
      const child = children.get(childId(node.meta.instance_id, step.iteration, index));
      const item: FanOutItem = { index, request, answer: answers.get(request.id) };
      if (child) {
        item.child = child;
        placed.add(child.meta.instance_id);
        return item;
      }
      item.leaf = leaves.find((l) => l.request_id === request.id);
      return item;
    });
    entries.push({ type: "fanout", after: step, items });
  });

  const strays = node.children.filter((c) => !placed.has(c.meta.instance_id));
  if (strays.length > 0 && steps.length > 0) {
    const after = steps[steps.length - 1];
    const items = strays.map((child, index) => ({
      index,
      child,
      request: { id: child.meta.instance_id, kind: "rlm" as const, question: child.meta.question },
    }));
    entries.push({ type: "fanout", after, items });
  }
  return entries;
}

/** The leaf steps numbered right after a suspended step: the model calls of its fan-out. */
function leavesAfter(steps: StepRecord[], position: number): StepRecord[] {
  const leaves: StepRecord[] = [];
  for (const step of steps.slice(position + 1)) {
    if (step.kind !== "leaf") break;
    leaves.push(step);
  }
  return leaves;
}

/** Every node of the tree, parents before children, siblings in fan-out order. */
export function walk(node: TraceNode): TraceNode[] {
  const nodes = [node];
  for (const entry of orderedEntries(node)) {
    if (entry.type !== "fanout") continue;
    for (const item of entry.items) if (item.child) nodes.push(...walk(item.child));
  }
  return nodes;
}
