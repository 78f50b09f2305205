import { useEffect, useRef, useState } from "preact/hooks";

/**
 * Plot names each of its SVG groups (`aria-label="bar"`, `"x-axis tick"`, ...) but gives them
 * no role, and ARIA forbids a name on an element without one. A group that holds something to
 * read (text, a titled mark, a link) becomes a named `group`; one that holds only lines and
 * shapes is decoration, hidden from assistive technology. The chart keeps its own name and
 * description (the figure's title and caption).
 */
export function labelChartGroups(chart: Element): void {
  for (const group of chart.querySelectorAll("g[aria-label]:not([role])")) {
    const readable = (group.textContent ?? "").trim() !== "" || group.querySelector("a, [aria-label]") !== null;
    if (readable) {
      group.setAttribute("role", "group");
    } else {
      group.removeAttribute("aria-label");
      group.setAttribute("aria-hidden", "true");
    }
  }
}

/**
 * A chart drawn by Observable Plot, redrawn when its inputs or the space it has change.
 * `draw` gets the width in pixels and returns Plot's element.
 */
export function PlotFigure({ draw, deps, caption, title, className }: {
  draw: (width: number) => Element;
  deps: unknown[];
  caption: string;
  title?: string;
  className?: string;
}) {
  const holder = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);

  useEffect(() => {
    const element = holder.current;
    if (!element) return;
    const observer = new ResizeObserver(([entry]) => setWidth(Math.floor(entry.contentRect.width)));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    const element = holder.current;
    if (!element || width === 0) return;
    const chart = draw(width);
    labelChartGroups(chart);
    element.replaceChildren(chart);
  }, [width, ...deps]);

  return (
    <figure class={className ? `chart ${className}` : "chart"}>
      {title && <h3 class="chart-title">{title}</h3>}
      <div ref={holder} class="chart-body" />
      <figcaption>{caption}</figcaption>
    </figure>
  );
}
