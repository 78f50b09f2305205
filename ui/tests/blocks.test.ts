import { describe, expect, it } from "vitest";
import { blockOutputs, codeBlocks } from "../src/trace/blocks";
import { cell, step } from "./fixtures";

describe("blockOutputs", () => {
  it("splits a cell's streams at its block ends; what follows the last end goes with the last block", () => {
    const ran = { ...cell("error"), stdout: "onetwo[cut]", stderr: "boom", blocks: [{ stdout_end: 3, stderr_end: 0 }, { stdout_end: 6, stderr_end: 4, error: "ValueError" }] };
    expect(blockOutputs(ran)).toEqual([
      { stdout: "one", stderr: "", error: null },
      { stdout: "two[cut]", stderr: "boom", error: "ValueError" },
    ]);
  });

  it("reads a cell without block ends as one block", () => {
    expect(blockOutputs({ ...cell("done"), stdout: "all" })).toEqual([{ stdout: "all", stderr: "", error: null }]);
  });

  it("takes a model call's code block by block", () => {
    expect(codeBlocks(step("r", 1, "generate", 0, 1, { blocks: ["a = 1", "print(a)"] }))).toEqual(["a = 1", "print(a)"]);
    expect(codeBlocks(step("r", 1, "generate", 0, 1, { code: "x" }))).toEqual(["x"]);
    expect(codeBlocks(step("r", 1, "generate", 0, 1))).toEqual([]);
  });
});
