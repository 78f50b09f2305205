import { describe, expect, it } from "vitest";
import { accuracyAgainstSpend, accuracyMeasures, hasCosts, judgeMeasures, kindLines, preferenceLines, preferenceMeasures, questionPoints } from "../src/benchmarks";
import type { BatchRow, BatchSummary } from "../src/types";

const usage = (tokens: number) => ({ model_calls: 1, prompt_tokens: tokens, completion_tokens: 0 });

function summary(extra: Partial<BatchSummary> = {}): BatchSummary {
  return {
    batch_id: "b", count: 2, answered: 2, failed: 0, with_expected: 2, correct: 1, accuracy: 0.5, usage: usage(30), total_tokens: 30,
    latency_seconds: { mean: 1, p50: 1, p95: 1, max: 1 }, started_at: "", ended_at: "", ...extra,
  };
}

function row(id: string, tokens: number, extra: Partial<BatchRow> = {}): BatchRow {
  return { id, question: id, answer: "a", expected: "a", correct: true, iterations: 1, usage: usage(tokens), sources: [], duration_seconds: 2, instance_id: `i-${id}`, error: null, ...extra };
}

describe("benchmark charts", () => {
  it("reads a single-strategy batch as RLM alone, spending tokens when there are no costs", () => {
    const points = questionPoints([row("q1", 10), row("q2", 20, { error: "boom", duration_seconds: 5 })]);
    expect(points.map((p) => [p.strategy, p.latency])).toEqual([["rlm", 2], ["rlm", null]]);
    expect(accuracyMeasures(summary())).toEqual([{ strategy: "rlm", measure: "accuracy", value: 0.5 }]);
    expect(hasCosts(points)).toBe(false);
    expect(accuracyAgainstSpend(summary(), points)).toEqual([{ strategy: "rlm", accuracy: 0.5, spend: 15 }]);
  });

  it("reads per-strategy summaries in the usual strategy order, with costs when every row has one", () => {
    const strategies = {
      keyword: { accuracy: 0.2, f1: 0.3, judge: { relevance: 3, groundedness: 2, coherence: 4 } },
      rlm: { accuracy: 0.9, f1: 0.8, judge: { relevance: 5, groundedness: 5, coherence: 5 } },
    };
    const rows = [row("q1", 10, { strategy: "rlm", cost: 0.02 }), row("q1", 5, { strategy: "keyword", cost: 0.001 })];
    const points = questionPoints(rows);
    expect(accuracyMeasures(summary({ strategies })).map((m) => `${m.strategy} ${m.measure}`)).toEqual(["rlm accuracy", "rlm F1", "keyword accuracy", "keyword F1"]);
    expect(judgeMeasures(summary({ strategies }))).toHaveLength(6);
    expect(hasCosts(points)).toBe(true);
    expect(accuracyAgainstSpend(summary({ strategies }), points)).toEqual([
      { strategy: "rlm", accuracy: 0.9, spend: 0.02 },
      { strategy: "keyword", accuracy: 0.2, spend: 0.001 },
    ]);
  });

  it("reads the judge's pairwise preference per strategy, none when the judge gave none", () => {
    const strategies = {
      keyword: { accuracy: 0.5, preference: { wins: 0, ties: 7, losses: 1, win_rate: 0.4375 } },
      rlm: { accuracy: 1, preference: { wins: 4, ties: 4, losses: 0, win_rate: 0.75 } },
      vector: { accuracy: 0.5, preference: null },
    };
    expect(preferenceMeasures(summary({ strategies }))).toEqual([
      { strategy: "rlm", measure: "win rate", value: 0.75 },
      { strategy: "keyword", measure: "win rate", value: 0.4375 },
    ]);
    expect(preferenceLines(summary({ strategies })).map((l) => [l.strategy, l.wins, l.ties, l.losses])).toEqual([["rlm", 4, 4, 0], ["keyword", 0, 7, 1]]);
    expect(preferenceLines(summary())).toEqual([]);
  });

  it("splits accuracy by kind of question, a cell per strategy", () => {
    const strategies = {
      keyword: { accuracy: 0.5, kinds: { needle: { count: 1, accuracy: 1, f1: 0.5 }, aggregation: { count: 1, accuracy: 0, f1: 0 } } },
      rlm: { accuracy: 1, kinds: { needle: { count: 1, accuracy: 1, f1: 0.4 } } },
    };
    const { strategies: order, lines } = kindLines(summary({ strategies }));
    expect(order).toEqual(["rlm", "keyword"]);
    expect(lines.map((l) => [l.kind, l.count, l.scores.map((k) => k?.f1 ?? null)])).toEqual([["aggregation", 1, [null, 0]], ["needle", 1, [0.4, 0.5]]]);
    expect(kindLines(summary({ kinds: { filter: { count: 2, accuracy: 0.5, f1: 0.6 } } })).lines).toEqual([{ kind: "filter", count: 2, scores: [{ count: 2, accuracy: 0.5, f1: 0.6 }] }]);
  });
});
