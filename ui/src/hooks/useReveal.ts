import { useEffect } from "preact/hooks";

/** Show the element the address's #fragment names: open the <details> around it, scroll, focus. */
export function reveal(id: string): boolean {
  const target = document.getElementById(id);
  if (!target) return false;
  for (let el: HTMLElement | null = target; el; el = el.parentElement) if (el instanceof HTMLDetailsElement) el.open = true;
  const focusable = target instanceof HTMLDetailsElement ? target.querySelector("summary") : target;
  target.scrollIntoView({ block: "center" });
  focusable?.focus({ preventScroll: true });
  return true;
}

/** Follows fragment links (e.g. from timeline bars) to steps that may sit in closed sections. */
export function useReveal(ready: boolean): void {
  useEffect(() => {
    const onHash = () => reveal(decodeURIComponent(location.hash.slice(1)));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  useEffect(() => {
    if (ready && location.hash) reveal(decodeURIComponent(location.hash.slice(1)));
  }, [ready]);
}
