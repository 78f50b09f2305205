import { STRATEGIES } from "./types";

// One colour per strategy, each at least 3:1 against white (WCAG 1.4.11), in STRATEGIES order.
const STRATEGY_COLORS = ["#0969da", "#bc4c00", "#1a7f37", "#8250df", "#cf222e"];

/** Strategies in their usual order, then any the server reports that the UI does not know. */
export function strategyDomain(names: Iterable<string>): string[] {
  const seen = new Set(names);
  return [...STRATEGIES.filter((s) => seen.has(s)), ...[...seen].filter((s) => !(STRATEGIES as readonly string[]).includes(s)).sort()];
}

export function strategyColors(domain: string[]): string[] {
  return domain.map((s, i) => {
    const known = (STRATEGIES as readonly string[]).indexOf(s);
    return known >= 0 ? STRATEGY_COLORS[known] : ["#57606a", "#6e4c13", "#0a3069"][i % 3];
  });
}
