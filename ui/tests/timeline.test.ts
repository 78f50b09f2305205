import { describe, expect, it } from "vitest";
import { barKind, buildTimeline, visibleEnd } from "../src/trace/timeline";
import { ORIGIN, cell, node, request, step } from "./fixtures";

function fanOut(done: boolean) {
  const pending = Array.from({ length: 8 }, (_, k) => request(`c.${k}`));
  const children = Array.from({ length: 8 }, (_, k) =>
    node(`root-1-${k}`, done ? [step(`root-1-${k}`, 1, "generate", 2.1, 3), step(`root-1-${k}`, 2, "execute", 3, 3.2)] : [], [], done, 1, 2),
  );
  const steps = [step("root", 1, "generate", 0, 1), step("root", 2, "execute", 1, 2, { cell: cell("suspended", pending) })];
  if (done) steps.push(step("root", 3, "resume", 3.5, 4, { cell: cell("done") }));
  return node("root", steps, children, done);
}

describe("buildTimeline", () => {
  it("gives each sub-query of a fan-out its own row, all spanning the same time", () => {
    const t = buildTimeline(fanOut(true), ORIGIN + 10_000);
    expect(t.rows.map((r) => r.label)).toEqual(["query", "#1", "#2", "#3", "#4", "#5", "#6", "#7", "#8"]);
    const subs = t.spans.filter((s) => s.row !== "root");
    expect(subs).toHaveLength(8);
    expect(subs.every((s) => s.start === 2 && s.end === 3.2 && !s.running)).toBe(true);
    expect(t.bars.filter((b) => b.kind === "model call")).toHaveLength(9);
    expect(t.extent).toBe(4);
  });

  it("runs open spans to now while live, and marks them stopped after", () => {
    const running = buildTimeline(fanOut(false), ORIGIN + 7_000);
    const spans = running.spans.filter((s) => s.row !== "root");
    expect(spans.every((s) => s.running && s.end === 7)).toBe(true);
    const stopped = buildTimeline(fanOut(false), ORIGIN + 7_000, false);
    expect(stopped.spans.every((s) => !s.running && s.label.endsWith("(stopped)"))).toBe(true);
  });

  it("shows a single model call that has not answered yet as a waiting row", () => {
    const root = node("root", [step("root", 1, "generate", 0, 1), step("root", 2, "execute", 1, 2, { cell: cell("suspended", [request("c.0", "llm")]) })], [], false);
    const t = buildTimeline(root, ORIGIN + 5_000);
    expect(t.rows.map((r) => r.label)).toEqual(["query", "#1 llm"]);
    expect(t.spans.find((s) => s.row === "root/c.0")).toMatchObject({ start: 2, end: 5, running: true });
  });

  it("labels grandchildren by their path", () => {
    const grandchild = node("root-1-0-1-0", [], [], true, 2);
    const child = node("root-1-0", [step("root-1-0", 1, "execute", 1, 2, { cell: cell("suspended", [request("d.0")]) })], [grandchild], true, 1);
    const root = node("root", [step("root", 1, "execute", 0, 1, { cell: cell("suspended", [request("c.0")]) })], [child]);
    expect(buildTimeline(root, ORIGIN).rows.map((r) => r.label)).toEqual(["query", "#1", "#1 › #1"]);
  });

  it("widens bars too short to see, and only those", () => {
    expect(visibleEnd(1, 1.0001, 100)).toBeCloseTo(1.4);
    expect(visibleEnd(1, 5, 100)).toBe(5);
  });
});

describe("barKind", () => {
  it("colours model calls, sandbox runs and the retrieval baselines' searches apart", () => {
    expect(["generate", "leaf", "forced", "rewrite", "answer", "judge"].map((k) => barKind(k as never))).toEqual(Array(6).fill("model call"));
    expect([barKind("execute"), barKind("resume"), barKind("index"), barKind("retrieve")]).toEqual(["sandbox", "sandbox", "retrieval", "retrieval"]);
  });
});
