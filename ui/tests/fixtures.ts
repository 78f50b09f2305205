// Small trace trees shaped like the ones the function app writes (shared/trace.py).
import type { CellResult, PendingRequest, StepRecord, TraceNode } from "../src/types";

const T0 = Date.parse("2026-01-01T00:00:00Z");
export const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
export const ORIGIN = T0;

export function step(instance: string, n: number, kind: StepRecord["kind"], from: number, to: number, extra: Partial<StepRecord> = {}): StepRecord {
  const usage = kind === "generate" || kind === "leaf" || kind === "forced" ? { model_calls: 1, prompt_tokens: 100, completion_tokens: 10 } : null;
  return { instance_id: instance, step: n, iteration: 1, kind, started_at: at(from), ended_at: at(to), usage, answers: {}, ...extra };
}

export function cell(status: CellResult["status"], pending: PendingRequest[] = []): CellResult {
  return { cell_id: "c", status, stdout: "", stderr: "", pending, used_sections: [] };
}

export function request(id: string, kind: "rlm" | "llm" = "rlm"): PendingRequest {
  return { id, kind, question: `question ${id}` };
}

export function node(id: string, steps: StepRecord[], children: TraceNode[] = [], done = true, depth = 0, start = 0): TraceNode {
  return {
    meta: { instance_id: id, root_id: "root", parent_id: null, depth, question: `q ${id}`, corpus_id: "c".repeat(64), context_chars: 100, started_at: at(start) },
    result: done ? { answer: "a", forced: false, failed: false, iterations: 1, sources: [], usage: {}, sub_queries: 0, duration_seconds: 9, instance_id: id, trace: "" } : null,
    steps,
    children,
  };
}
