import * as Plot from "@observablehq/plot";
import { clip, seconds } from "../format";
import { BAR_KINDS, type Timeline as TimelineData, type TimelineSpan, visibleEnd } from "../trace/timeline";
import { PlotFigure } from "./PlotFigure";

// Non-text contrast of at least 3:1 against the white chart background (WCAG 1.4.11).
export const KIND_COLORS = ["#0969da", "#bc4c00", "#1a7f37"];
const ROW_HEIGHT = 26;

function spanMark(spans: TimelineSpan[], extent: number, running: boolean) {
  return Plot.barX(spans, {
    x1: "start",
    x2: (s: TimelineSpan) => visibleEnd(s.start, s.end, extent),
    y: "row",
    fill: "#eef1f4",
    stroke: "#6e7781",
    strokeDasharray: running ? "4,3" : undefined,
    insetTop: 2,
    insetBottom: 2,
    href: (s: TimelineSpan) => `#${s.anchor}`,
    title: (s: TimelineSpan) => s.label,
    ariaLabel: (s: TimelineSpan) => `${s.label}; from ${seconds(s.start)} to ${running ? "now" : seconds(s.end)}`,
    className: running ? "timeline-span running" : "timeline-span",
  });
}

function draw(timeline: TimelineData, width: number): Element {
  const narrow = width < 560;
  const extent = Math.max(timeline.extent, 0.05);
  const labels = new Map(timeline.rows.map((r) => [r.key, r.label]));
  const kinds = BAR_KINDS.filter((k) => timeline.bars.some((b) => b.kind === k));
  return Plot.plot({
    width,
    height: timeline.rows.length * ROW_HEIGHT + 48,
    marginLeft: narrow ? 64 : 150,
    marginRight: 16,
    style: { fontSize: "12px" },
    x: { domain: [0, extent * 1.02], label: "seconds since the query started", grid: true },
    y: { domain: timeline.rows.map((r) => r.key), tickFormat: (k: string) => clip(labels.get(k) ?? k, narrow ? 9 : 22), label: null, tickSize: 0 },
    // The legend names only the kinds of bar this tree has, each in its fixed colour.
    color: { domain: kinds, range: kinds.map((k) => KIND_COLORS[BAR_KINDS.indexOf(k)]), legend: kinds.length > 0 },
    marks: [
      spanMark(timeline.spans.filter((s) => !s.running), extent, false),
      spanMark(timeline.spans.filter((s) => s.running), extent, true),
      Plot.barX(timeline.bars, {
        x1: "start",
        x2: (b) => visibleEnd(b.start, b.end, extent),
        y: "row",
        fill: "kind",
        insetTop: 7,
        insetBottom: 7,
        href: (b) => `#${b.anchor}`,
        title: (b) => `${b.label} (${seconds(b.end - b.start)})`,
        ariaLabel: (b) => `${b.label}; ${seconds(b.end - b.start)} from ${seconds(b.start)}`,
        className: "timeline-bar",
      }),
    ],
  });
}

/** Every (sub-)query as a row: grey spans while alive, coloured bars for its model calls and sandbox runs. */
export function Timeline({ timeline }: { timeline: TimelineData }) {
  const below = timeline.rows.length - 1;
  const rows = below === 0 ? "one query" : `the query and ${below} sub-quer${below === 1 ? "y or call" : "ies and calls"} below it`;
  const caption =
    `Timeline of ${rows} over ${seconds(timeline.extent)}. ` +
    "Grey spans: how long each ran (dashed while running); bars: its model calls, sandbox runs and retrievals. Select one to jump to its step.";
  return <PlotFigure className="timeline" draw={(w) => draw(timeline, w)} deps={[timeline]} caption={caption} />;
}
