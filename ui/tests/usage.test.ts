import { describe, expect, it } from "vitest";
import { treeUsage } from "../src/trace/usage";
import { cell, node, request, step } from "./fixtures";

describe("treeUsage", () => {
  it("adds up every model call of the tree, sub-queries included", () => {
    const child = node("root-1-0", [step("root-1-0", 1, "generate", 1, 2)], [], true, 1);
    const root = node("root", [step("root", 1, "generate", 0, 1), step("root", 2, "execute", 1, 2, { cell: cell("suspended", [request("c.0")]) })], [child]);
    expect(treeUsage(root)).toEqual({ modelCalls: 2, promptTokens: 200, cachedTokens: 0, completionTokens: 20, cost: null });
  });

  it("has a cost only when steps carry one", () => {
    const priced = step("root", 1, "generate", 0, 1);
    priced.usage = { model_calls: 1, prompt_tokens: 10, cached_tokens: 8, completion_tokens: 1, cost: 0.25 };
    const root = node("root", [priced, step("root", 2, "generate", 1, 2, { cost: 0.5 })]);
    expect(treeUsage(root).cost).toBe(0.75);
    expect(treeUsage(root).cachedTokens).toBe(8);
  });
});
