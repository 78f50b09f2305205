import { describe, expect, it } from "vitest";
import { nextDelay } from "../src/hooks/usePolling";

describe("nextDelay", () => {
  it("polls fast while things change and backs off to the slow pace while they do not", () => {
    expect(nextDelay(3000, true, 10, 700, 3000)).toBe(700);
    expect(nextDelay(700, false, 10, 700, 3000)).toBe(1050);
    expect(nextDelay(2500, false, 10, 700, 3000)).toBe(3000);
  });

  it("never polls faster than twice what the last round took", () => {
    expect(nextDelay(700, true, 1600, 700, 3000)).toBe(3200);
  });
});
