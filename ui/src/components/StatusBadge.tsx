import { isTerminal, type RuntimeStatus } from "../types";

/** A run's runtime status as a coloured pill; a terminated run is one a person cancelled. */
export function StatusBadge({ status }: { status: RuntimeStatus | undefined }) {
  const tone = status === "Completed" ? "good" : isTerminal(status) ? "bad" : "live";
  return <span class={`state ${tone}`}>{status === "Terminated" ? "Cancelled" : (status ?? "Loading")}</span>;
}
