// Tokens and cost of a whole recursion tree, added up from its step records, so the total
// grows with every model call while the query runs (the result only has it at the end).

import type { StepRecord, TokenUsage, TraceNode } from "../types";
import { walk } from "./order";

export interface UsageTotals {
  modelCalls: number;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** Null when no step carries a cost (no price table configured). */
  cost: number | null;
}

export function stepCost(step: StepRecord): number | null {
  const cost = step.usage?.cost ?? step.cost;
  return typeof cost === "number" ? cost : null;
}

export function treeUsage(root: TraceNode): UsageTotals {
  const totals: UsageTotals = { modelCalls: 0, promptTokens: 0, cachedTokens: 0, completionTokens: 0, cost: null };
  for (const node of walk(root)) {
    for (const step of node.steps) {
      add(totals, step.usage);
      const cost = stepCost(step);
      if (cost !== null) totals.cost = (totals.cost ?? 0) + cost;
    }
  }
  return totals;
}

function add(totals: UsageTotals, usage: TokenUsage | null | undefined): void {
  if (!usage) return;
  totals.modelCalls += usage.model_calls;
  totals.promptTokens += usage.prompt_tokens;
  totals.cachedTokens += usage.cached_tokens ?? 0;
  totals.completionTokens += usage.completion_tokens;
}
