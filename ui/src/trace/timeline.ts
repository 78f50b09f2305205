// The Gantt view of a query: one row per (sub-)query and per single model call, a span
// for how long each was alive, and a bar for every model call and sandbox run in it, so a
// fan-out shows as bars side by side in time.

import type { StepKind, StepRecord, TraceNode } from "../types";
import { orderedEntries } from "./order";

export type BarKind = "model call" | "sandbox" | "retrieval";

export interface TimelineRow {
  key: string;
  label: string;
  /** What the row is, in words: the question it answers. */
  title: string;
  depth: number;
}

export interface TimelineSpan {
  row: string;
  start: number;
  end: number;
  running: boolean;
  label: string;
  anchor: string;
}

export interface TimelineBar {
  row: string;
  start: number;
  end: number;
  kind: BarKind;
  label: string;
  anchor: string;
}

export interface Timeline {
  /** Epoch milliseconds that x = 0 stands for: when the root query started. */
  origin: number;
  /** Seconds from origin to the last thing shown. */
  extent: number;
  rows: TimelineRow[];
  spans: TimelineSpan[];
  bars: TimelineBar[];
}

export const BAR_KINDS: readonly BarKind[] = ["model call", "sandbox", "retrieval"];

export function barKind(kind: StepKind): BarKind {
  if (kind === "execute" || kind === "resume") return "sandbox";
  return kind === "index" || kind === "retrieve" ? "retrieval" : "model call";
}

export function stepAnchor(step: Pick<StepRecord, "instance_id" | "step">): string {
  return `step-${step.instance_id}-${step.step}`;
}

export function nodeAnchor(instanceId: string): string {
  return `node-${instanceId}`;
}

export const STEP_NAMES: Record<StepKind, string> = {
  generate: "model call",
  forced: "forced answer",
  leaf: "model call",
  execute: "sandbox run",
  resume: "sandbox resume",
  index: "index build",
  retrieve: "retrieval",
  rewrite: "query rewrite",
  answer: "answer from passages",
  judge: "judge",
};

/**
 * `now` (epoch ms) is where spans still open end. While `live`, a (sub-)query without a
 * result is running; once the root stopped (cancelled, failed) it is stopped.
 */
export function buildTimeline(root: TraceNode, now: number, live = true): Timeline {
  const origin = Date.parse(root.meta.started_at);
  const at = (iso: string) => (Date.parse(iso) - origin) / 1000;
  const open = Math.max((now - origin) / 1000, 0);
  const timeline: Timeline = { origin, extent: 0, rows: [], spans: [], bars: [] };

  const stepBar = (step: StepRecord, row: string, who: string): TimelineBar => ({
    row,
    start: at(step.started_at),
    end: at(step.ended_at),
    kind: barKind(step.kind),
    label: `${who}: ${STEP_NAMES[step.kind]}, iteration ${step.iteration}`,
    anchor: stepAnchor(step),
  });

  const visit = (node: TraceNode, label: string, depth: number) => {
    const id = node.meta.instance_id;
    const steps = node.steps;
    const start = at(node.meta.started_at);
    // A finished query ends with its last step (its result is written right after it).
    const ended = steps.length ? Math.max(...steps.map((s) => at(s.ended_at))) : start + (node.result?.duration_seconds ?? 0);
    const end = node.result ? ended : Math.max(open, ended);
    const running = !node.result && live;
    const state = node.result ? "" : running ? " (running)" : " (stopped)";
    timeline.rows.push({ key: id, label, title: node.meta.question, depth });
    timeline.spans.push({ row: id, start, end, running, label: `${label}: ${node.meta.question}${state}`, anchor: nodeAnchor(id) });
    for (const step of steps) if (step.kind !== "leaf") timeline.bars.push(stepBar(step, id, label));

    const entries = orderedEntries(node);
    const iterations = new Set(entries.filter((e) => e.type === "fanout").map((e) => e.after.iteration));
    for (const entry of entries) {
      if (entry.type !== "fanout") continue;
      const suspendedAt = at(entry.after.ended_at);
      for (const item of entry.items) {
        const number = iterations.size > 1 ? `i${entry.after.iteration}#${item.index + 1}` : `#${item.index + 1}`;
        const name = depth === 0 ? number : `${label} › ${number}`;
        if (item.child) {
          visit(item.child, name, depth + 1);
          continue;
        }
        const row = `${id}/${item.request.id}`;
        const kind = item.request.kind === "llm" ? "llm" : "rlm";
        const rowLabel = `${name} ${kind}`;
        timeline.rows.push({ key: row, label: rowLabel, title: item.request.question, depth: depth + 1 });
        if (item.leaf) {
          timeline.bars.push(stepBar(item.leaf, row, rowLabel));
        } else if (!node.result) {
          const anchor = nodeAnchor(id);
          const label = `${rowLabel}: ${live ? "waiting for the model" : "stopped"}`;
          timeline.spans.push({ row, start: suspendedAt, end: Math.max(open, suspendedAt), running: live, label, anchor });
        }
      }
    }
  };

  visit(root, "query", 0);
  const ends = [...timeline.spans.map((s) => s.end), ...timeline.bars.map((b) => b.end)];
  timeline.extent = Math.max(0, ...ends);
  return timeline;
}

/** Bars too short to see at this scale get a minimum width; their labels keep the truth. */
export function visibleEnd(start: number, end: number, extent: number): number {
  return Math.max(end, start + extent * 0.004);
}
