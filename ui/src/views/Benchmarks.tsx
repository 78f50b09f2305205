import * as Plot from "@observablehq/plot";
import { useLocation, useRoute } from "preact-iso";
import { useEffect, useMemo, useState } from "preact/hooks";
import { batchRows, batchStatus, listBatches } from "../api";
import {
  accuracyAgainstSpend,
  accuracyMeasures,
  hasCosts,
  judgeMeasures,
  kindLines,
  type Measure,
  preferenceLines,
  preferenceMeasures,
  type QuestionPoint,
  questionPoints,
  spendOf,
  type StrategyPoint,
} from "../benchmarks";
import { PlotFigure } from "../components/PlotFigure";
import { Problems } from "../components/Problems";
import { StatusBadge } from "../components/StatusBadge";
import { clip, count, counted, money, percent, seconds, when } from "../format";
import { usePageTitle } from "../hooks/usePageTitle";
import { usePolling } from "../hooks/usePolling";
import { paths } from "../paths";
import { strategyColors, strategyDomain } from "../strategies";
import { type BatchListing, type BatchRow, type BatchStatus, type BatchSummary, isTerminal } from "../types";

function colorScale(domain: string[]) {
  return { domain, range: strategyColors(domain) };
}

function measureChart(measures: Measure[], max: number, label: string, width: number): Element {
  const domain = strategyDomain(measures.map((m) => m.strategy));
  return Plot.plot({
    width,
    height: 40 + new Set(measures.map((m) => m.measure)).size * (domain.length * 22 + 24),
    marginLeft: 80,
    marginRight: 100,
    x: { domain: [0, max], label, grid: true },
    y: { domain, label: null },
    fy: { label: null },
    color: colorScale(domain),
    marks: [
      Plot.barX(measures, { x: "value", y: "strategy", fy: "measure", fill: "strategy", title: (m: Measure) => `${m.strategy} ${m.measure}: ${m.value.toFixed(2)}` }),
      Plot.text(measures, { x: "value", y: "strategy", fy: "measure", text: (m: Measure) => m.value.toFixed(2), dx: 4, textAnchor: "start", fill: "#1f2328" }),
      Plot.ruleX([0]),
    ],
  });
}

type Reading = { value: (p: QuestionPoint) => number | null; label: string; format: (value: number) => string };

function distributionChart(points: QuestionPoint[], { value, label, format }: Reading, width: number): Element {
  const shown = points.filter((p) => value(p) !== null);
  const domain = strategyDomain(shown.map((p) => p.strategy));
  return Plot.plot({
    width,
    height: 60 + domain.length * 48,
    marginLeft: 80,
    x: { label, grid: true, zero: true },
    y: { domain, label: null },
    color: colorScale(domain),
    marks: [
      Plot.boxX(shown, { x: value, y: "strategy", stroke: "#57606a", fill: "#eef1f4" }),
      Plot.dot(shown, { x: value, y: "strategy", fill: "strategy", r: 3.5, title: (p: QuestionPoint) => `${p.strategy} · ${clip(p.question, 60)}: ${format(value(p) ?? 0)}` }),
    ],
  });
}

function tradeoffChart(points: StrategyPoint[], spendLabel: string, width: number): Element {
  const domain = strategyDomain(points.map((p) => p.strategy));
  return Plot.plot({
    width,
    height: 300,
    marginLeft: 56,
    marginRight: 40,
    // Room on the right, so the costliest strategy's dot and label are not cut off.
    x: { label: spendLabel, grid: true, domain: [0, Math.max(...points.map((p) => p.spend), 0) * 1.15 || 1] },
    y: { label: "accuracy", domain: [0, 1], grid: true, tickFormat: "%" },
    color: colorScale(domain),
    marks: [
      Plot.dot(points, { x: "spend", y: "accuracy", fill: "strategy", r: 7, title: (p: StrategyPoint) => `${p.strategy}: ${percent(p.accuracy)} at ${p.spend.toPrecision(3)}` }),
      Plot.text(points, { x: "spend", y: "accuracy", text: "strategy", dy: -14, fill: "#1f2328" }),
    ],
  });
}

function SummaryFacts({ summary }: { summary: BatchSummary }) {
  const strategies = Object.keys(summary.strategies ?? {}).length;
  return (
    <dl class="meters">
      <div>
        <dt>{strategies > 1 ? "Answers" : "Questions"}</dt>
        <dd>
          {count(summary.count)}{" "}
          {strategies > 1 ? `(${counted(summary.count / strategies, "question")} × ${strategies} strategies; ` : "("}
          {count(summary.answered)} answered, {count(summary.failed)} failed)
        </dd>
      </div>
      <div>
        <dt>Accuracy</dt>
        <dd>{summary.accuracy === null ? "no expected answers" : `${percent(summary.accuracy)} (${summary.correct} of ${summary.with_expected})`}</dd>
      </div>
      <div>
        <dt>Model calls</dt>
        <dd>{count(summary.usage.model_calls)}</dd>
      </div>
      <div>
        <dt>Tokens</dt>
        <dd>{count(summary.total_tokens)}</dd>
      </div>
      <div>
        <dt>Latency p50 / p95</dt>
        <dd>{summary.latency_seconds ? `${seconds(summary.latency_seconds.p50)} / ${seconds(summary.latency_seconds.p95)}` : "–"}</dd>
      </div>
      {typeof summary.cost === "number" && (
        <div>
          <dt>Cost</dt>
          <dd>{money(summary.cost)}</dd>
        </div>
      )}
    </dl>
  );
}

function Charts({ summary, rows }: { summary: BatchSummary; rows: BatchRow[] }) {
  const points = useMemo(() => questionPoints(rows), [rows]);
  const costs = hasCosts(points);
  const spendLabel = costs ? "cost per question (USD)" : "tokens per question (no price table: tokens stand in for cost)";
  const accuracy = accuracyMeasures(summary);
  const judge = judgeMeasures(summary);
  const preference = preferenceMeasures(summary);
  const tradeoff = accuracyAgainstSpend(summary, points);
  return (
    <div class="chart-grid">
      {accuracy.length > 0 ? (
        <PlotFigure className="chart-accuracy" title="Accuracy and F1" draw={(w) => measureChart(accuracy, 1, "score (0 to 1)", w)} deps={[summary]} caption="Accuracy and F1 per strategy, over the questions with an expected answer." />
      ) : (
        <p class="facts">No question had an expected answer, so there is no accuracy to chart.</p>
      )}
      {judge.length > 0 && <PlotFigure className="chart-judge" title="Judge scores" draw={(w) => measureChart(judge, 5, "judge score (1 to 5)", w)} deps={[summary]} caption="The judge model's relevance, groundedness and coherence per strategy." />}
      {preference.length > 0 && <PlotFigure className="chart-preference" title="Judge's preference" draw={(w) => measureChart(preference, 1, "win rate (a tie counts half)", w)} deps={[summary]} caption="How often the judge preferred each strategy's answer over another strategy's answer to the same question." />}
      <PlotFigure className="chart-latency" title="Latency per question" draw={(w) => distributionChart(points, { value: (p) => p.latency, label: "seconds per question", format: seconds }, w)} deps={[rows]} caption="Latency of each question per strategy: the box spans the middle half, the dots are questions." />
      <PlotFigure className="chart-cost" title={costs ? "Cost per question" : "Tokens per question"} draw={(w) => distributionChart(points, { value: (p) => spendOf(p, costs), label: spendLabel, format: costs ? money : count }, w)} deps={[rows]} caption={costs ? "Cost of each question per strategy." : "Tokens of each question per strategy."} />
      {tradeoff.length > 0 && <PlotFigure className="chart-tradeoff" title={costs ? "Accuracy against cost" : "Accuracy against tokens"} draw={(w) => tradeoffChart(tradeoff, costs ? "mean cost per question (USD)" : "mean tokens per question", w)} deps={[summary, rows]} caption="Accuracy against what it cost: up and to the left is better." />}
    </div>
  );
}

function PreferenceTable({ summary }: { summary: BatchSummary }) {
  const lines = preferenceLines(summary);
  if (lines.length === 0) return null;
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label="Pairwise preference">
      <table class="listing preference">
        <caption>The judge's pairwise preference: each answer against every other strategy's answer to the same question</caption>
        <thead>
          <tr>
            <th scope="col">Strategy</th>
            <th scope="col">Wins</th>
            <th scope="col">Ties</th>
            <th scope="col">Losses</th>
            <th scope="col">Win rate</th>
          </tr>
        </thead>
        <tbody>
          {lines.map((line) => (
            <tr key={line.strategy}>
              <th scope="row">{line.strategy}</th>
              <td>{count(line.wins)}</td>
              <td>{count(line.ties)}</td>
              <td>{count(line.losses)}</td>
              <td>{percent(line.win_rate)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function KindTable({ summary }: { summary: BatchSummary }) {
  const { strategies, lines } = kindLines(summary);
  if (lines.length === 0) return null;
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label="Scores by kind of question">
      <table class="listing kinds">
        <caption>Accuracy (F1) by kind of question</caption>
        <thead>
          <tr>
            <th scope="col">Kind</th>
            {strategies.map((s) => (
              <th scope="col" key={s}>
                {s}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {lines.map((line) => (
            <tr key={line.kind}>
              <th scope="row">
                {line.kind} ({count(line.count)})
              </th>
              {line.scores.map((k, i) => (
                <td key={strategies[i]}>{k ? `${percent(k.accuracy)} (${k.f1 === null ? "–" : k.f1.toFixed(2)})` : "–"}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RowsTable({ rows }: { rows: BatchRow[] }) {
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label="Questions of the batch">
      <table class="listing rows">
        <caption>Every question: select one to open its trace</caption>
        <thead>
          <tr>
            <th scope="col">Question</th>
            <th scope="col">Strategy</th>
            <th scope="col">Correct</th>
            <th scope="col">Answer</th>
            <th scope="col">Expected</th>
            <th scope="col">Latency</th>
            <th scope="col">Tokens</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={`${row.strategy ?? ""}-${row.id}`}>
              <td>
                <a href={paths.trace(row.instance_id)}>{clip(row.question, 80)}</a>
              </td>
              <td>{row.strategy ?? "rlm"}</td>
              <td>{row.correct === null ? "–" : row.correct ? "yes" : "no"}</td>
              <td>{row.error ? <span class="error-text">{clip(row.error, 80)}</span> : clip(row.answer ?? "", 80)}</td>
              <td>{clip(row.expected ?? "", 40)}</td>
              <td>{seconds(row.duration_seconds)}</td>
              <td>{count(row.usage.prompt_tokens + row.usage.completion_tokens)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function BatchView({ id }: { id: string }) {
  const live = usePolling<BatchStatus>(id, { fetch: () => batchStatus(id), done: (d) => isTerminal(d.status) });
  const [rows, setRows] = useState<BatchRow[] | null>(null);
  const status = live.data;
  useEffect(() => {
    if (status?.status === "Completed") batchRows(id).then(setRows, () => setRows([]));
  }, [status?.status]);
  return (
    <section class="run" aria-labelledby="batch-title" data-status={status?.status ?? "Loading"}>
      <h2 id="batch-title">
        Batch <code>{id}</code>
      </h2>
      <p role="status">
        <StatusBadge status={status?.status} />
        {status?.progress && !isTerminal(status.status) && ` · ${status.progress.done} of ${status.progress.total} done, ${status.progress.running} running`}
      </p>
      {live.error && <Problems error={live.error} />}
      {status?.summary && <SummaryFacts summary={status.summary} />}
      {status?.summary && rows && (
        <>
          <Charts summary={status.summary} rows={rows} />
          <PreferenceTable summary={status.summary} />
          <KindTable summary={status.summary} />
          <RowsTable rows={rows} />
        </>
      )}
    </section>
  );
}

function BatchList({ batches }: { batches: BatchListing[] }) {
  if (batches.length === 0) return <p class="facts">No batches yet. Submit one with POST /api/batches or `python -m devhost batch`.</p>;
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label="Batches">
      <table class="listing">
        <caption>Batches</caption>
        <thead>
          <tr>
            <th scope="col">Batch</th>
            <th scope="col">Status</th>
            <th scope="col">Questions</th>
            <th scope="col">Accuracy</th>
            <th scope="col">Started</th>
          </tr>
        </thead>
        <tbody>
          {batches.map((b) => (
            <tr key={b.batch_id}>
              <td>
                <a href={paths.benchmarks(b.batch_id)}>{b.batch_id}</a>
              </td>
              <td>{b.status}</td>
              <td>{count(b.questions)}</td>
              <td>{percent(b.summary?.accuracy)}</td>
              <td>{when(b.created)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function BenchmarksView() {
  const { params } = useRoute();
  const { route } = useLocation();
  const id = params.batchId ? decodeURIComponent(params.batchId) : "";
  usePageTitle(id ? `Benchmark ${id}` : "Benchmarks");
  const [batches, setBatches] = useState<BatchListing[] | null | undefined>(undefined);
  const [typed, setTyped] = useState(id);
  useEffect(() => {
    listBatches().then(setBatches, () => setBatches(null));
  }, []);

  return (
    <>
      <h1>Benchmarks</h1>
      <p class="lede">
        A batch runs many questions over one corpus. Its charts show how often each strategy was right, how long it took and what it
        cost; every question opens its trace.
      </p>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (typed.trim()) route(paths.benchmarks(typed.trim()));
        }}
      >
        <label class="field">
          <span>Batch id</span>
          <input type="text" name="batch-id" spellcheck={false} value={typed} onInput={(e) => setTyped((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <button type="submit">Open</button>
      </form>
      {id && <BatchView key={id} id={id} />}
      {batches === undefined && <p class="facts">Loading the batches…</p>}
      {batches === null && !id && <p class="facts">This deployment does not list its batches: enter a batch id above.</p>}
      {batches && <BatchList batches={batches} />}
    </>
  );
}
