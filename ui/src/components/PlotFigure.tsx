import { useEffect, useRef, useState } from "preact/hooks";

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
    element.replaceChildren(draw(width));
  }, [width, ...deps]);

  return (
    <figure class={className ? `chart ${className}` : "chart"}>
      {title && <h3 class="chart-title">{title}</h3>}
      <div ref={holder} class="chart-body" />
      <figcaption>{caption}</figcaption>
    </figure>
  );
}
