import { ApiError } from "../api";

/** What the server said was wrong with a request: the message and each field's problem. */
export function Problems({ error }: { error: Error | string | null }) {
  if (!error) return null;
  const message = typeof error === "string" ? error : error.message;
  const problems = error instanceof ApiError ? error.problems : [];
  return (
    <div role="alert" class="notice bad">
      <strong>{message}</strong>
      {problems.length > 0 && (
        <ul>
          {problems.map((p) => (
            <li key={p.field}>
              <code>{p.field}</code>: {p.problem}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
