import { describe, expect, it } from "vitest";
import { orderedEntries, walk } from "../src/trace/order";
import { cell, node, request, step } from "./fixtures";

describe("orderedEntries", () => {
  it("puts the sub-queries of a suspended cell before the resume that used their answers", () => {
    const pending = [request("c.0"), request("c.1")];
    const children = [node("root-1-1", [], [], true, 1, 2), node("root-1-0", [], [], true, 1, 2)];
    const root = node(
      "root",
      [
        step("root", 3, "resume", 5, 6, { answers: { "c.0": "A", "c.1": "B" }, cell: cell("done") }),
        step("root", 1, "generate", 0, 1),
        step("root", 2, "execute", 1, 2, { cell: cell("suspended", pending) }),
      ],
      children,
    );
    const entries = orderedEntries(root);
    expect(entries.map((e) => (e.type === "step" ? e.step.kind : "fanout"))).toEqual(["generate", "execute", "fanout", "resume"]);
    const fanout = entries[2];
    if (fanout.type !== "fanout") throw new Error("no fan-out");
    expect(fanout.items.map((i) => [i.index, i.child?.meta.instance_id, i.answer])).toEqual([
      [0, "root-1-0", "A"],
      [1, "root-1-1", "B"],
    ]);
  });

  it("numbers siblings past nine in order and continues across suspensions of one cell", () => {
    const first = Array.from({ length: 11 }, (_, k) => request(`c.${k}`));
    const second = [request("c.11")];
    const children = Array.from({ length: 12 }, (_, k) => node(`root-1-${k}`, [], [], true, 1));
    const root = node(
      "root",
      [
        step("root", 1, "generate", 0, 1),
        step("root", 2, "execute", 1, 2, { cell: cell("suspended", first) }),
        step("root", 3, "resume", 3, 4, { cell: cell("suspended", second) }),
        step("root", 4, "resume", 5, 6, { cell: cell("done") }),
      ],
      [...children].reverse(),
    );
    const fanouts = orderedEntries(root).filter((e) => e.type === "fanout");
    expect(fanouts.map((f) => f.items.map((i) => i.child?.meta.instance_id))).toEqual([
      Array.from({ length: 11 }, (_, k) => `root-1-${k}`),
      ["root-1-11"],
    ]);
    expect(walk(root).map((n) => n.meta.instance_id)).toEqual(["root", ...Array.from({ length: 12 }, (_, k) => `root-1-${k}`)]);
  });

  it("matches single model calls to their requests by id, whatever order they finished in", () => {
    const pending = [request("c.0", "llm"), request("c.1", "llm"), request("c.2", "llm")];
    const root = node("root", [
      step("root", 1, "generate", 0, 1),
      step("root", 2, "execute", 1, 2, { cell: cell("suspended", pending) }),
      step("root", 5, "leaf", 2, 3, { request_id: "c.2" }),
      step("root", 3, "leaf", 2, 4, { request_id: "c.0" }),
    ]);
    const fanout = orderedEntries(root).find((e) => e.type === "fanout");
    if (!fanout || fanout.type !== "fanout") throw new Error("no fan-out");
    expect(fanout.items.map((i) => i.leaf?.step ?? null)).toEqual([3, null, 5]);
  });

  it("still shows a child the fan-outs do not name", () => {
    const root = node("root", [step("root", 1, "generate", 0, 1)], [node("elsewhere", [], [], true, 1)]);
    const last = orderedEntries(root).at(-1);
    expect(last?.type === "fanout" && last.items[0].child?.meta.instance_id).toBe("elsewhere");
  });
});
