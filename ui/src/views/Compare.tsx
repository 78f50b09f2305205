import * as Plot from "@observablehq/plot";
import { useLocation } from "preact-iso";
import { useState } from "preact/hooks";
import { ApiError, cancelCompare, compareStatus, startCompare, uploadCorpus } from "../api";
import { Text } from "../components/Code";
import { CorpusPicker, corpusSource, EMPTY_CORPUS } from "../components/CorpusPicker";
import { OptionsFields } from "../components/Options";
import { PlotFigure } from "../components/PlotFigure";
import { Problems } from "../components/Problems";
import { Sources } from "../components/Sources";
import { StatusBadge } from "../components/StatusBadge";
import { count, counted, money, score, seconds } from "../format";
import { usePageTitle } from "../hooks/usePageTitle";
import { usePolling } from "../hooks/usePolling";
import { paths } from "../paths";
import { strategyColors, strategyDomain } from "../strategies";
import {
  type CompareCancelled,
  type CompareProgress,
  type CompareResult,
  type CompareStatus,
  type IndexBuild,
  isTerminal,
  type QueryOptions,
  STRATEGIES,
  type StrategyAnswer,
} from "../types";

const STRATEGY_NOTES: Record<string, string> = {
  rlm: "the model explores the corpus with code and sub-queries",
  keyword: "BM25 keyword retrieval, then one answer",
  vector: "embedding similarity retrieval, then one answer",
  hybrid: "keyword and vector results fused",
  agentic: "the model rewrites the query and retrieves again",
};

type Row = { label: string; value: (s: StrategyAnswer) => string };

const ROWS: Row[] = [
  { label: "Latency", value: (s) => seconds(s.latency_seconds) },
  { label: "Model calls", value: (s) => count(s.usage?.model_calls) },
  { label: "Tokens in → out", value: (s) => (s.usage ? `${count(s.usage.prompt_tokens)} → ${count(s.usage.completion_tokens)}` : "–") },
  { label: "Cost", value: (s) => money(s.cost) },
  { label: "Exact match", value: (s) => exact(s.scores?.exact_match) },
  { label: "F1", value: (s) => score(s.scores?.f1) },
  { label: "Relevance (1–5)", value: (s) => score(s.scores?.relevance, 1) },
  { label: "Groundedness (1–5)", value: (s) => score(s.scores?.groundedness, 1) },
  { label: "Coherence (1–5)", value: (s) => score(s.scores?.coherence, 1) },
];

function exact(value: boolean | number | null | undefined): string {
  if (value === null || value === undefined) return "–";
  return typeof value === "boolean" ? (value ? "yes" : "no") : score(value);
}

function describe(item: unknown): string {
  return typeof item === "string" ? item : JSON.stringify(item, null, 2);
}

/** Where each strategy is, while they run. */
function progressText(progress: CompareProgress | null): string {
  if (!progress) return "";
  const states = Object.entries(progress.strategies ?? {}).map(([name, state]) => `${name} ${state}`);
  return [progress.phase, ...states].filter(Boolean).join(" · ");
}

function indexNote(index: IndexBuild): string {
  const parts = [`${count(index.passages)} passages`];
  if (index.built.length > 0) parts.push(`built: ${index.built.join(", ")}`);
  if (index.reused.length > 0) parts.push(`reused: ${index.reused.join(", ")}`);
  return parts.join("; ");
}

/** The whole comparison's cost, and the parts no strategy's column holds: the judge and the index build. */
function CompareCost({ result }: { result: CompareResult }) {
  const judge = result.judge_usage;
  const index = result.index;
  return (
    <dl class="meters compare-cost" aria-label="What the comparison cost">
      <div>
        <dt>Total cost</dt>
        <dd>{money(result.cost)}</dd>
      </div>
      {judge && judge.model_calls > 0 && (
        <div>
          <dt>Judge</dt>
          <dd>
            {money(judge.cost)}
            <span class="meter-note">
              {counted(judge.model_calls, "model call")}, {count(judge.prompt_tokens + judge.completion_tokens)} tokens
            </span>
          </dd>
        </div>
      )}
      {index && (
        <div>
          <dt>Index building</dt>
          <dd>
            {money(index.usage.model_calls > 0 ? index.usage.cost : 0)}
            <span class="meter-note">{indexNote(index)}</span>
          </dd>
        </div>
      )}
    </dl>
  );
}

function cancelledText(stopped: CompareCancelled): string {
  if (stopped.strategies.length === 0) return "no strategy was still running.";
  const subs = stopped.sub_queries > 0 ? ` with ${count(stopped.sub_queries)} sub-quer${stopped.sub_queries === 1 ? "y" : "ies"}` : "";
  return `stopped ${stopped.strategies.join(", ")}${subs}.`;
}

function latencyChart(strategies: StrategyAnswer[], width: number): Element {
  const domain = strategyDomain(strategies.map((s) => s.strategy));
  return Plot.plot({
    width,
    height: 60 + strategies.length * 28,
    marginLeft: 80,
    x: { label: "latency (seconds)", grid: true },
    y: { label: null, domain },
    color: { domain, range: strategyColors(domain) },
    marks: [
      Plot.barX(strategies, { x: (s: StrategyAnswer) => s.latency_seconds ?? 0, y: "strategy", fill: "strategy", title: (s: StrategyAnswer) => `${s.strategy}: ${seconds(s.latency_seconds)}` }),
      Plot.ruleX([0]),
    ],
  });
}

function CompareResultView({ result, corpusId }: { result: CompareResult; corpusId: string | null }) {
  const strategies = result.strategies;
  return (
    <section aria-labelledby="compare-result">
      <h2 id="compare-result">Side by side</h2>
      <p>
        <strong>Question:</strong> {result.question}
        {result.expected && (
          <>
            {" "}
            · <strong>Expected:</strong> {result.expected}
          </>
        )}
      </p>
      <CompareCost result={result} />
      <div class="table-scroll" tabIndex={0} role="region" aria-label="Measures per strategy">
        <table class="compare-table">
          <thead>
            <tr>
              <th scope="col">Measure</th>
              {strategies.map((s) => (
                <th scope="col" key={s.strategy}>
                  {s.strategy}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {ROWS.map((row) => (
              <tr key={row.label}>
                <th scope="row">{row.label}</th>
                {strategies.map((s) => (
                  <td key={s.strategy}>{row.value(s)}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <PlotFigure title="Latency" draw={(w) => latencyChart(strategies, w)} deps={[result]} caption="Latency per strategy for this question." />
      <div class="strategy-grid">
        {strategies.map((s) => (
          <article key={s.strategy} class="strategy-card" aria-labelledby={`answer-${s.strategy}`}>
            <h3 id={`answer-${s.strategy}`}>{s.strategy}</h3>
            <p class="facts">{STRATEGY_NOTES[s.strategy] ?? ""}</p>
            {s.error ? <Text tone="error" text={s.error} label={`Error of ${s.strategy}`} /> : <Text text={s.answer ?? ""} label={`Answer of ${s.strategy}`} />}
            {s.answer_truncated && <p class="facts">The answer is cut here; its trace has all of it.</p>}
            <Sources sources={s.sources ?? []} corpusId={corpusId} answer={s.answer} />
            {(s.sources_total ?? 0) > (s.sources?.length ?? 0) && (
              <p class="facts">
                {s.sources.length} of {s.sources_total} sources shown.
              </p>
            )}
            {s.instance_id && (
              <p>
                <a href={paths.trace(s.instance_id)}>Open the trace of {s.strategy}</a>
              </p>
            )}
          </article>
        ))}
      </div>
      {result.preference?.length > 0 && (
        <section aria-labelledby="preference">
          <h3 id="preference">The judge's preference, pair by pair</h3>
          <ul class="preference">
            {result.preference.map((p) => (
              <li key={`${p.a}-${p.b}`}>
                {p.a} or {p.b}: <strong>{p.winner === "tie" ? "a tie" : p.winner}</strong>
              </li>
            ))}
          </ul>
        </section>
      )}
    </section>
  );
}

function CompareRun({ id, corpusId }: { id: string; corpusId: string | null }) {
  const live = usePolling<CompareStatus>(id, { fetch: () => compareStatus(id), done: (d) => isTerminal(d.status) });
  const [cancel, setCancel] = useState<{ busy: boolean; message?: string }>({ busy: false });
  const status = live.data;
  const running = status !== null && !isTerminal(status.status);

  const onCancel = async () => {
    setCancel({ busy: true, message: "Cancelling…" });
    try {
      setCancel({ busy: false, message: cancelledText(await cancelCompare(id)) });
    } catch (error) {
      setCancel({ busy: false, message: `Could not cancel: ${(error as Error).message}` });
    }
    live.refresh();
  };

  return (
    <section class="run" aria-labelledby="compare-title" data-status={status?.status ?? "Loading"}>
      <div class="run-head">
        <h2 id="compare-title">
          Comparison <code>{id}</code>
        </h2>
        {running && (
          <button type="button" class="danger" onClick={onCancel} disabled={cancel.busy}>
            Cancel comparison
          </button>
        )}
      </div>
      <p role="status" class="run-status">
        <StatusBadge status={status?.status} />
        {running && status.progress && ` · ${progressText(status.progress)}`}
        {cancel.message && <span> · {cancel.message}</span>}
      </p>
      {live.error && <Problems error={live.error} />}
      {status?.status === "Failed" && <Text tone="error" text={describe(status.error)} label="Error" />}
      {status?.status === "Terminated" && (
        <p class="notice bad">This comparison was cancelled before it finished: its strategies were stopped, so there is no result to compare.</p>
      )}
      {status?.result && <CompareResultView result={status.result} corpusId={corpusId} />}
    </section>
  );
}

export function CompareView() {
  usePageTitle("Compare");
  const { query, route } = useLocation();
  const [corpus, setCorpus] = useState(EMPTY_CORPUS);
  const [question, setQuestion] = useState("");
  const [expected, setExpected] = useState("");
  const [chosen, setChosen] = useState<string[]>([...STRATEGIES]);
  const [judge, setJudge] = useState(true);
  const [options, setOptions] = useState<QueryOptions>({});
  const [problem, setProblem] = useState<Error | string | null>(null);
  const [corpusId, setCorpusId] = useState<string | null>(query.corpus || null);
  const [busy, setBusy] = useState(false);

  const toggle = (name: string, on: boolean) => setChosen(on ? STRATEGIES.filter((s) => s === name || chosen.includes(s)) : chosen.filter((s) => s !== name));

  const submit = async (event: Event) => {
    event.preventDefault();
    const source = corpusSource(corpus);
    if (typeof source === "string") return setProblem(source);
    if (!question.trim()) return setProblem("Write a question first.");
    if (chosen.length === 0) return setProblem("Choose at least one strategy.");
    setBusy(true);
    setProblem(null);
    try {
      // Pasted text is stored first, so every strategy's sources can open their section text.
      const id = source.corpus_id ?? (await uploadCorpus({ text: source.corpus ?? "" })).corpus_id;
      setCorpusId(id);
      const body = { question, corpus_id: id, strategies: chosen, options, judge, ...(expected.trim() ? { expected: expected.trim() } : {}) };
      const started = await startCompare(body);
      route(paths.compare(started.compare_id, id));
    } catch (error) {
      setProblem(
        error instanceof ApiError && (error.status === 404 || error.status === 405) ? "This deployment has no compare route (POST /api/compare)." : (error as Error),
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <h1>Compare</h1>
      <p class="lede">
        Answer one question with RLM and with retrieval baselines at once, and see their answers, sources, latency, tokens, cost and
        scores side by side. Give the expected answer to have each one scored.
      </p>
      <form class="ask-form" onSubmit={submit} noValidate>
        <CorpusPicker value={corpus} onChange={setCorpus} idPrefix="compare" />
        <label class="field">
          <span>Question</span>
          <textarea name="question" rows={2} value={question} onInput={(e) => setQuestion((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
        <label class="field">
          <span>Expected answer (optional)</span>
          <input type="text" name="expected" value={expected} onInput={(e) => setExpected((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <fieldset class="strategies">
          <legend>Strategies</legend>
          {STRATEGIES.map((name) => (
            <label key={name} class="check">
              <input type="checkbox" name="strategy" value={name} checked={chosen.includes(name)} onChange={(e) => toggle(name, (e.currentTarget as HTMLInputElement).checked)} />
              <span>
                <strong>{name}</strong> <span class="hint">{STRATEGY_NOTES[name]}</span>
              </span>
            </label>
          ))}
        </fieldset>
        <label class="check">
          <input type="checkbox" name="judge" checked={judge} onChange={(e) => setJudge((e.currentTarget as HTMLInputElement).checked)} />
          <span>
            <strong>Judge the answers</strong>{" "}
            <span class="hint">a judge model scores relevance, groundedness and coherence (1–5) and picks between each pair</span>
          </span>
        </label>
        <OptionsFields value={options} onChange={setOptions} idPrefix="compare" />
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Starting…" : "Compare"}
          </button>
        </div>
        <Problems error={problem} />
      </form>
      {query.id && <CompareRun key={query.id} id={query.id} corpusId={corpusId} />}
    </>
  );
}
