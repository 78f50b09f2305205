// @vitest-environment happy-dom
import * as Plot from "@observablehq/plot";
import { describe, expect, it } from "vitest";
import { labelChartGroups } from "../src/components/PlotFigure";

function chart(): Element {
  const rows = [
    { strategy: "rlm", value: 0.8 },
    { strategy: "keyword", value: 0.5 },
  ];
  return Plot.plot({
    ariaLabel: "Accuracy per strategy",
    x: { domain: [0, 1], grid: true },
    marks: [Plot.barX(rows, { x: "value", y: "strategy", title: (r: { strategy: string }) => r.strategy }), Plot.ruleX([0])],
  });
}

describe("labelChartGroups", () => {
  it("leaves no named group without a role", () => {
    const svg = chart();
    expect(svg.querySelectorAll("g[aria-label]:not([role])").length).toBeGreaterThan(0);
    labelChartGroups(svg);
    expect(svg.querySelectorAll("g[aria-label]:not([role])")).toHaveLength(0);
  });

  it("names the groups that hold something to read and hides bare shapes", () => {
    const svg = chart();
    labelChartGroups(svg);
    const named = [...svg.querySelectorAll("g[role=group]")].map((g) => g.getAttribute("aria-label"));
    expect(named).toContain("bar");
    expect(named).toContain("y-axis tick label");
    const hidden = [...svg.querySelectorAll("g[aria-hidden=true]")];
    expect(hidden.length).toBeGreaterThan(0);
    expect(hidden.every((g) => !g.hasAttribute("aria-label") && (g.textContent ?? "").trim() === "")).toBe(true);
    expect(named).not.toContain("rule");
  });

  it("keeps the chart's own name and every link", () => {
    const svg = chart();
    labelChartGroups(svg);
    expect(svg.getAttribute("aria-label")).toBe("Accuracy per strategy");
    expect(svg.hasAttribute("aria-hidden")).toBe(false);
    const linked = Plot.plot({ marks: [Plot.barX([{ x: 1 }], { x: "x", href: () => "#step-1", ariaLabel: () => "model call" })] });
    labelChartGroups(linked);
    const bars = linked.querySelector("a")?.closest("g");
    expect(bars?.getAttribute("role")).toBe("group");
  });
});
