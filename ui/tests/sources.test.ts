import { describe, expect, it } from "vitest";
import { markAnswer } from "../src/components/Sources";

describe("section text", () => {
  it("marks every place the answer appears, and nothing for answers too short to mean anything", () => {
    expect(markAnswer("code ZEBRA-1 and ZEBRA-1.", "ZEBRA-1")).toEqual([
      { text: "code ", match: false },
      { text: "ZEBRA-1", match: true },
      { text: " and ", match: false },
      { text: "ZEBRA-1", match: true },
      { text: ".", match: false },
    ]);
    expect(markAnswer("a b", "a")).toEqual([{ text: "a b", match: false }]);
  });
});
