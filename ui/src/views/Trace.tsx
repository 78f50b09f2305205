import { useLocation, useRoute } from "preact-iso";
import { useEffect, useState } from "preact/hooks";
import { listQueries } from "../api";
import { QueryRun } from "../components/QueryRun";
import { clip, when } from "../format";
import { usePageTitle } from "../hooks/usePageTitle";
import { paths } from "../paths";
import type { QueryListing } from "../types";

function RecentQueries() {
  const [queries, setQueries] = useState<QueryListing[] | null | undefined>(undefined);
  useEffect(() => {
    listQueries(20).then(setQueries, () => setQueries(null));
  }, []);
  if (queries === undefined) return <p class="facts">Loading recent queries…</p>;
  if (queries === null) return <p class="facts">This deployment does not list its queries: enter an id above.</p>;
  if (queries.length === 0) return <p class="facts">No queries yet. Ask one first.</p>;
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label="Recent queries">
      <table class="listing">
        <caption>Recent queries</caption>
        <thead>
          <tr>
            <th scope="col">Question</th>
            <th scope="col">Status</th>
            <th scope="col">Started</th>
          </tr>
        </thead>
        <tbody>
          {queries.map((q) => (
            <tr key={q.instance_id}>
              <td>
                <a href={paths.trace(q.instance_id)}>{clip(q.question || q.instance_id, 100)}</a>
              </td>
              <td>{q.status}</td>
              <td>{when(q.created)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function TraceView() {
  const { params } = useRoute();
  const { route } = useLocation();
  const id = params.id ? decodeURIComponent(params.id) : "";
  usePageTitle(id ? `Trace ${id}` : "Trace");
  const [typed, setTyped] = useState(id);
  useEffect(() => setTyped(id), [id]);

  return (
    <>
      <h1>Trace</h1>
      <p class="lede">The recursion tree and timeline of any query, running or finished: every model call, the code it wrote, what the code printed, and the sub-queries it started.</p>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (typed.trim()) route(paths.trace(typed.trim()));
        }}
      >
        <label class="field">
          <span>Query id</span>
          <input type="text" name="query-id" spellcheck={false} value={typed} onInput={(e) => setTyped((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <button type="submit">Open</button>
      </form>
      {id ? <QueryRun key={id} id={id} /> : <RecentQueries />}
    </>
  );
}
