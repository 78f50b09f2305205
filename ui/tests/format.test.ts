import { describe, expect, it } from "vitest";
import { chars, clip, money, percent, seconds } from "../src/format";

describe("format", () => {
  it("reads durations, money, shares and sizes the way people say them", () => {
    expect([seconds(0.042), seconds(3.14159), seconds(42.5), seconds(125), seconds(null)]).toEqual(["42 ms", "3.14 s", "42.5 s", "2 min 5 s", "–"]);
    expect([money(0), money(0.00042), money(0.5), money(12.345), money(null)]).toEqual(["$0", "$0.00042", "$0.5000", "$12.35", "–"]);
    expect(percent(0.6667)).toBe("66.7%");
    expect([chars(950), chars(400_000), chars(10_500_000)]).toEqual(["950 chars", "400 k chars", "10.5 M chars"]);
    expect(clip("abcdef", 4)).toBe("abc…");
  });
});
