// Batch results as the Benchmarks charts read them: per-strategy scores from the summary,
// per-question latency and cost from the rows. A batch of one strategy is RLM alone.

import { strategyDomain } from "./strategies";
import type { BatchRow, BatchSummary, KindScores, PreferenceTally, StrategySummary } from "./types";

export const DEFAULT_STRATEGY = "rlm";

export interface Measure {
  strategy: string;
  measure: string;
  value: number;
}

export interface QuestionPoint {
  strategy: string;
  id: string;
  question: string;
  latency: number | null;
  tokens: number;
  cost: number | null;
  correct: boolean | null;
  instanceId: string;
}

export interface StrategyPoint {
  strategy: string;
  accuracy: number;
  /** Mean cost per question, or mean tokens when no price table gave costs. */
  spend: number;
}

export function strategySummaries(summary: BatchSummary): Record<string, StrategySummary> {
  if (summary.strategies && Object.keys(summary.strategies).length > 0) return summary.strategies;
  return {
    [DEFAULT_STRATEGY]: {
      accuracy: summary.accuracy,
      f1: summary.f1 ?? null,
      latency_seconds: summary.latency_seconds,
      cost: summary.cost ?? null,
      usage: summary.usage,
      kinds: summary.kinds ?? null,
    },
  };
}

function measures(summary: BatchSummary, pick: (s: StrategySummary) => [string, number | null | undefined][]): Measure[] {
  const found: Measure[] = [];
  const bySummary = strategySummaries(summary);
  for (const strategy of strategyDomain(Object.keys(bySummary)))
    for (const [measure, value] of pick(bySummary[strategy])) if (typeof value === "number") found.push({ strategy, measure, value });
  return found;
}

/** Accuracy and F1, both 0 to 1. */
export function accuracyMeasures(summary: BatchSummary): Measure[] {
  return measures(summary, (s) => [
    ["accuracy", s.accuracy],
    ["F1", s.f1],
  ]);
}

/** The judge's relevance, groundedness and coherence, 1 to 5. */
export function judgeMeasures(summary: BatchSummary): Measure[] {
  return measures(summary, (s) => [
    ["relevance", s.judge?.relevance],
    ["groundedness", s.judge?.groundedness],
    ["coherence", s.judge?.coherence],
  ]);
}

/** The judge's pairwise preference: each strategy's win rate against the others' answers, 0 to 1. */
export function preferenceMeasures(summary: BatchSummary): Measure[] {
  return measures(summary, (s) => [["win rate", s.preference?.win_rate]]);
}

export interface PreferenceLine extends PreferenceTally {
  strategy: string;
}

/** Wins, ties and losses per strategy, in the usual strategy order; empty when the judge gave none. */
export function preferenceLines(summary: BatchSummary): PreferenceLine[] {
  const bySummary = strategySummaries(summary);
  return strategyDomain(Object.keys(bySummary)).flatMap((strategy) => {
    const tally = bySummary[strategy].preference;
    return tally ? [{ strategy, ...tally }] : [];
  });
}

export interface KindLine {
  kind: string;
  count: number;
  /** Per strategy, in the order of `strategies`: its scores on this kind, if it has any. */
  scores: (KindScores | null)[];
}

/** Accuracy and F1 by the kind of question, one line per kind, a cell per strategy. */
export function kindLines(summary: BatchSummary): { strategies: string[]; lines: KindLine[] } {
  const bySummary = strategySummaries(summary);
  const strategies = strategyDomain(Object.keys(bySummary));
  const kinds = [...new Set(strategies.flatMap((s) => Object.keys(bySummary[s].kinds ?? {})))].sort();
  const lines = kinds.map((kind) => {
    const scores = strategies.map((s) => bySummary[s].kinds?.[kind] ?? null);
    return { kind, count: scores.find((k) => k !== null)?.count ?? 0, scores };
  });
  return { strategies, lines };
}

export function questionPoints(rows: BatchRow[]): QuestionPoint[] {
  return rows.map((row) => ({
    strategy: row.strategy ?? DEFAULT_STRATEGY,
    id: row.id,
    question: row.question,
    latency: row.error ? null : row.duration_seconds,
    tokens: row.usage.prompt_tokens + row.usage.completion_tokens,
    cost: typeof row.cost === "number" ? row.cost : (row.usage.cost ?? null),
    correct: row.correct,
    instanceId: row.instance_id,
  }));
}

/** Whether every question carries a cost; if not, charts spend in tokens instead. */
export function hasCosts(points: QuestionPoint[]): boolean {
  return points.length > 0 && points.every((p) => p.cost !== null);
}

export function spendOf(point: QuestionPoint, costs: boolean): number {
  return costs ? (point.cost ?? 0) : point.tokens;
}

/** One point per strategy with an accuracy: what it got right against what it spent per question. */
export function accuracyAgainstSpend(summary: BatchSummary, points: QuestionPoint[]): StrategyPoint[] {
  const costs = hasCosts(points);
  const bySummary = strategySummaries(summary);
  const result: StrategyPoint[] = [];
  for (const strategy of strategyDomain(Object.keys(bySummary))) {
    const accuracy = bySummary[strategy].accuracy;
    const mine = points.filter((p) => p.strategy === strategy);
    if (typeof accuracy !== "number" || mine.length === 0) continue;
    const spend = mine.reduce((total, p) => total + spendOf(p, costs), 0) / mine.length;
    result.push({ strategy, accuracy, spend });
  }
  return result;
}
