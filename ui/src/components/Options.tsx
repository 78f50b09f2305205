import type { QueryOptions } from "../types";

type NumberOption = "max_iterations" | "max_depth" | "sub_max_iterations" | "truncate_chars";

// The bounds the API enforces (QueryOptions in shared/models.py), so the form says them too.
const NUMBERS: { key: NumberOption; label: string; min: number; max: number; hint: string }[] = [
  { key: "max_iterations", label: "Iterations of the root query", min: 1, max: 50, hint: "code-and-run rounds before a forced answer" },
  { key: "max_depth", label: "Recursion depth", min: 0, max: 4, hint: "how deep rlm_query may nest; at the bound a single model call answers" },
  { key: "sub_max_iterations", label: "Iterations of each sub-query", min: 1, max: 30, hint: "" },
  { key: "truncate_chars", label: "Output the model sees per cell (chars)", min: 200, max: 20000, hint: "the rest is cut, but kept in the trace" },
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
        {NUMBERS.map(({ key, label, min, max, hint }) => (
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
              step={1}
              inputMode="numeric"
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
