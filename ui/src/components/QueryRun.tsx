import { useLocation } from "preact-iso";
import { useMemo, useRef, useState } from "preact/hooks";
import { ApiError, cancelQuery, queryStatus, queryTrace, serverNow } from "../api";
import { clip, count, money, seconds } from "../format";
import { usePolling } from "../hooks/usePolling";
import { useReveal } from "../hooks/useReveal";
import { paths } from "../paths";
import { walk } from "../trace/order";
import { buildTimeline } from "../trace/timeline";
import { treeUsage } from "../trace/usage";
import { type ForcedReason, isTerminal, type QueryStatus, type TraceNode } from "../types";
import { Text } from "./Code";
import { Sources } from "./Sources";
import { StatusBadge } from "./StatusBadge";
import { Timeline } from "./Timeline";
import { NodeCard } from "./TraceTree";

interface Live {
  status: QueryStatus;
  trace: TraceNode | null;
  /** No query orchestration answers to this id (a retrieval baseline of a comparison, say):
   * its status is read from its trace, and it cannot be cancelled from here. */
  fromTrace: boolean;
}

async function fetchLive(id: string): Promise<Live> {
  try {
    const status = await queryStatus(id);
    return { status, trace: await queryTrace(id), fromTrace: false };
  } catch (error) {
    const trace = error instanceof ApiError && error.status === 404 ? await queryTrace(id) : null;
    if (!trace) throw error;
    const state = trace.result ? (trace.result.failed ? "Failed" : "Completed") : "Running";
    return { status: { instance_id: id, status: state, progress: null, result: trace.result ?? undefined }, trace, fromTrace: true };
  }
}

function fingerprint({ status, trace }: Live): string {
  const nodes = trace ? walk(trace) : [];
  const steps = nodes.reduce((n, node) => n + node.steps.length, 0);
  const results = nodes.filter((node) => node.result).length;
  return `${status.status}|${JSON.stringify(status.progress)}|${nodes.length}|${steps}|${results}`;
}

const FORCED: Record<ForcedReason, string> = {
  iterations: "the iteration limit was reached",
  tokens: "the token budget ran out",
  cost: "the cost budget ran out",
  deadline: "the deadline passed",
};

/** The latest instant recorded anywhere in the tree: where a stopped query's bars end. */
function lastRecorded(root: TraceNode): number {
  let last = 0;
  for (const node of walk(root)) {
    last = Math.max(last, Date.parse(node.meta.started_at));
    for (const step of node.steps) last = Math.max(last, Date.parse(step.ended_at));
  }
  return last;
}

function subQueries(root: TraceNode, finished: boolean): string {
  const below = walk(root).slice(1);
  const done = below.filter((n) => n.result).length;
  const open = below.length - done;
  if (below.length === 0) return "none";
  return open === 0 ? `${done} done` : `${open} ${finished ? "stopped" : "running"}, ${done} done`;
}

function errorText(error: unknown): string {
  if (error === null || error === undefined) return "";
  return typeof error === "string" ? error : JSON.stringify(error, null, 2);
}

/** A query as it runs and after: status, tokens and cost, cancel, answer, timeline, tree. */
export function QueryRun({ id }: { id: string }) {
  const live = usePolling<Live>(id, {
    fetch: () => fetchLive(id),
    done: (d) => isTerminal(d.status.status),
    fingerprint,
  });
  const [cancel, setCancel] = useState<{ busy: boolean; message?: string }>({ busy: false });
  const onTraceView = useLocation().path.startsWith(paths.trace());
  const status = live.data?.status;
  const trace = live.data?.trace ?? null;
  const finished = isTerminal(status?.status);
  useReveal(finished && trace !== null);

  // Watched while it ran: a stopped query's open spans end where we last saw them running.
  const lastLive = useRef(0);
  if (status && !finished) lastLive.current = serverNow();
  const now = trace && finished ? Math.max(lastRecorded(trace), lastLive.current) : serverNow();
  const timeline = useMemo(() => (trace ? buildTimeline(trace, now, !finished) : null), [trace, finished]);
  const usage = useMemo(() => (trace ? treeUsage(trace) : null), [trace]);

  if (live.error instanceof ApiError && live.error.status === 404)
    return (
      <p role="alert" class="notice bad">
        No query with id <code>{id}</code>.
      </p>
    );

  const onCancel = async () => {
    setCancel({ busy: true, message: "Cancelling…" });
    try {
      await cancelQuery(id);
      setCancel({ busy: false, message: "Cancelled: the query and its sub-queries are being stopped." });
    } catch (error) {
      setCancel({ busy: false, message: `Could not cancel: ${(error as Error).message}` });
    }
    live.refresh();
  };

  const progress = status?.progress;
  const result = status?.result;
  const elapsed = result ? result.duration_seconds : trace ? Math.max(now - Date.parse(trace.meta.started_at), 0) / 1000 : null;
  // The result's cost covers the whole tree, so it wins once there is one.
  const cost = result?.cost ?? usage?.cost ?? progress?.cost ?? null;

  return (
    <section class="run" aria-labelledby="run-title" data-status={status?.status ?? "Loading"}>
      <div class="run-head">
        <h2 id="run-title">
          Query <code>{id}</code>
        </h2>
        {!onTraceView && <a href={paths.trace(id)}>Open its trace page</a>}
        {status && !finished && !live.data?.fromTrace && (
          <button type="button" class="danger" onClick={onCancel} disabled={cancel.busy}>
            Cancel query
          </button>
        )}
      </div>
      <p role="status" class="run-status">
        <StatusBadge status={status?.status} />
        {progress && !finished && (
          <span>
            {" "}
            {progress.phase}, iteration {progress.iteration} of {progress.max_iterations}
            {progress.code && (
              <>
                : <code>{clip(progress.code, 80)}</code>
              </>
            )}
          </span>
        )}
        {cancel.message && <span> · {cancel.message}</span>}
      </p>
      <dl class="meters" aria-label="Usage so far">
        <div>
          <dt>Elapsed</dt>
          <dd>{seconds(elapsed)}</dd>
        </div>
        <div>
          <dt>Model calls</dt>
          <dd>{count(usage?.modelCalls ?? 0)}</dd>
        </div>
        <div>
          <dt>Tokens in → out</dt>
          <dd>
            {count(usage?.promptTokens ?? 0)} → {count(usage?.completionTokens ?? 0)}
            {(usage?.cachedTokens ?? 0) > 0 && <span class="facts"> ({count(usage?.cachedTokens)} cached)</span>}
          </dd>
        </div>
        <div>
          <dt>Cost</dt>
          <dd title={cost === null ? "No price table is configured for these models" : undefined}>{money(cost)}</dd>
        </div>
        <div>
          <dt>Sub-queries</dt>
          <dd>
            {trace ? subQueries(trace, finished) : "–"}
          </dd>
        </div>
      </dl>
      {progress?.trace_id && (
        <p class="facts">
          Telemetry trace <code>{progress.trace_id}</code> (the operation id to search in Application Insights).
        </p>
      )}

      {result && (
        <section class="answer" aria-labelledby="answer-title">
          <h3 id="answer-title">{result.forced ? `Best answer when ${FORCED[result.forced_reason ?? "iterations"]}` : "Answer"}</h3>
          <Text text={result.answer} label="Answer" />
          {result.answer_key && <p class="facts">The answer is longer than shown here; all of it is stored as {result.answer_key}.</p>}
          <Sources sources={result.sources} corpusId={trace?.meta.corpus_id ?? null} answer={result.answer} />
        </section>
      )}
      {(status?.status === "Failed" || status?.status === "Terminated") && status.error != null && (
        <div class="notice bad">
          <strong>{status.status === "Failed" ? "The query failed" : "The query was stopped"}</strong>
          <Text text={errorText(status.error)} label="Error" tone="error" />
        </div>
      )}
      {live.error && !(live.error instanceof ApiError && live.error.status === 404) && (
        <p role="alert" class="notice bad">
          Cannot read the query right now: {live.error.message}. Retrying…
        </p>
      )}

      {timeline && trace ? (
        <>
          <h3>Timeline</h3>
          <Timeline timeline={timeline} />
          <h3>Recursion tree</h3>
          <p class="facts">
            Each step in the order it ran; a cell that calls <code>rlm_query</code> or <code>llm_query</code> fans out, and its
            sub-queries come before the step that resumed it.
          </p>
          <div class="tree">
            <NodeCard node={trace} stopped={finished} />
          </div>
        </>
      ) : (
        status && !finished && <p class="facts">Starting: the trace appears once the sandbox session is open.</p>
      )}
    </section>
  );
}
