import type { QueryOptions } from "../types";

type NumberOption = "max_iterations" | "max_depth" | "sub_max_iterations" | "truncate_chars" | "max_tokens" | "max_cost" | "deadline_seconds";

// The bounds the API enforces (QueryOptions in shared/models.py), so the form says them too.
const NUMBERS: { key: NumberOption; label: string; min: number; max: number; step: number; hint: string }[] = [
  { key: "max_iterations", label: "Iterations of the root query", min: 1, max: 50, step: 1, hint: "code-and-run rounds before a forced answer" },
  { key: "max_depth", label: "Recursion depth", min: 0, max: 4, step: 1, hint: "how deep rlm_query may nest; at the bound a single model call answers" },
  { key: "sub_max_iterations", label: "Iterations of each sub-query", min: 1, max: 30, step: 1, hint: "" },
  { key: "truncate_chars", label: "Output the model sees per cell (chars)", min: 200, max: 20000, step: 1, hint: "the rest is cut, but kept in the trace" },
  { key: "max_tokens", label: "Token budget of the whole tree", min: 1000, max: 100_000_000, step: 1, hint: "when it runs out, the query answers with what it has" },
  { key: "max_cost", label: "Cost budget of the whole tree", min: 0.0001, max: 10_000, step: 0.0001, hint: "in the price table's currency; needs a price table" },
  { key: "deadline_seconds", label: "Deadline (seconds)", min: 1, max: 86_400, step: 1, hint: "wall-clock time for the whole tree" },
];

export function OptionsFields({ value, onChange, idPrefix }: { value: QueryOptions; onChange: (o: QueryOptions) => void; idPrefix: string }) {
  const setNumber = (key: NumberOption, text: string) => {
    const next = { ...value };
    if (text === "") delete next[key];
    else next[key] = Number(text);
    onChange(next);
  };
  const setText = (key: "root_model" | "sub_model", text: string) => {
    const next = { ...value };
    if (text.trim() === "") delete next[key];
    else next[key] = text.trim();
    onChange(next);
  };
  return (
    <details class="options">
      <summary>Options (leave empty for the server's defaults)</summary>
      <div class="option-grid">
        {NUMBERS.map(({ key, label, min, max, step, hint }) => (
          <label key={key} class="field">
            <span>{label}</span>
            <span class="hint" id={`${idPrefix}-${key}-hint`}>
              {min}–{max}
              {hint && `: ${hint}`}
            </span>
            <input
              type="number"
              name={key}
              min={min}
              max={max}
              step={step}
              inputMode={step < 1 ? "decimal" : "numeric"}
              aria-describedby={`${idPrefix}-${key}-hint`}
              value={value[key] ?? ""}
              onInput={(e) => setNumber(key, (e.currentTarget as HTMLInputElement).value)}
            />
          </label>
        ))}
        {(["root_model", "sub_model"] as const).map((key) => (
          <label key={key} class="field">
            <span>{key === "root_model" ? "Root model" : "Sub-query model"}</span>
            <input type="text" name={key} spellcheck={false} value={value[key] ?? ""} onInput={(e) => setText(key, (e.currentTarget as HTMLInputElement).value)} />
          </label>
        ))}
      </div>
    </details>
  );
}
