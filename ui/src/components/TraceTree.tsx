import { chars, clip, count, money, seconds } from "../format";
import { blockOutputs, codeBlocks } from "../trace/blocks";
import { type Entry, type FanOutItem, orderedEntries } from "../trace/order";
import { barKind, nodeAnchor, STEP_NAMES, stepAnchor } from "../trace/timeline";
import type { RetrievalDetail, StepRecord, TraceNode } from "../types";
import { Code, Text } from "./Code";

const secondsBetween = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;

function tokens(step: StepRecord): string | null {
  const u = step.usage;
  if (!u || !u.model_calls) return null;
  const cached = u.cached_tokens ? ` (${count(u.cached_tokens)} cached)` : "";
  const cost = typeof u.cost === "number" ? `, ${money(u.cost)}` : "";
  return `${count(u.prompt_tokens)} → ${count(u.completion_tokens)} tokens${cached}${cost}`;
}

function Facts({ items }: { items: (string | null | undefined | false)[] }) {
  return <span class="facts">{items.filter(Boolean).join(" · ")}</span>;
}

const capitalized = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** A retrieval baseline's step: the indexes it built or reused, its query and the passages it found. */
function Retrieval({ detail }: { detail: RetrievalDetail }) {
  return (
    <div class="retrieval">
      {(detail.built.length > 0 || detail.reused.length > 0) && (
        <p class="facts">
          {detail.built.length > 0 && `Built ${detail.built.join(", ")}. `}
          {detail.reused.length > 0 && `Reused ${detail.reused.join(", ")}.`}
        </p>
      )}
      {detail.query && (
        <p>
          <strong>Query:</strong> {detail.query}
        </p>
      )}
      {detail.hits.length > 0 && (
        <ol class="hits">
          {detail.hits.map((hit) => (
            <li key={hit.passage}>
              {hit.title} <span class="facts">(passage {hit.passage}, score {hit.score.toFixed(3)})</span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

/** The model used, and what the code asked for when it named another one. */
function modelOf(used: string | null | undefined, requested: string | null | undefined): string | null {
  if (!used) return null;
  return requested && requested !== used ? `${used} (asked for ${requested})` : used;
}

function CellOutput({ step }: { step: StepRecord }) {
  const cell = step.cell;
  if (!cell) return null;
  const outputs = blockOutputs(cell);
  const many = outputs.length > 1;
  return (
    <>
      {outputs.map((out, i) => {
        const text = out.stdout + (out.stderr ? `${out.stdout ? "\n" : ""}${out.stderr}` : "");
        const label = many ? `Output of block ${i + 1} of ${outputs.length}` : "Cell output";
        return (
          <div key={i} class="block-output">
            {many && <p class="block-label">Block {i + 1}</p>}
            {text ? <Text text={text} label={label} /> : !out.error && cell.status !== "suspended" && <p class="facts">no output</p>}
            {out.error && !out.stderr.includes(out.error) && <Text tone="error" text={out.error} label={`Error of ${many ? `block ${i + 1}` : "the cell"}`} />}
          </div>
        );
      })}
      {cell.error && !outputs.some((o) => o.error) && !cell.stderr.includes(cell.error) && <Text tone="error" text={cell.error} label="Error" />}
    </>
  );
}

function outcome(node: TraceNode, stopped: boolean): { text: string; tone: string } {
  const r = node.result;
  if (!r) return stopped ? { text: "stopped", tone: "bad" } : { text: "running", tone: "live" };
  if (r.failed) return { text: "failed", tone: "bad" };
  if (r.forced) return { text: `forced answer (${r.forced_reason ?? "iterations"})`, tone: "warn" };
  return { text: "answered", tone: "good" };
}

export function StepCard({ step }: { step: StepRecord }) {
  const took = seconds(secondsBetween(step.started_at, step.ended_at));
  const cell = step.cell;
  const kind = barKind(step.kind);
  const model = kind === "model call";
  const title = step.kind === "forced" ? "Forced answer (iteration limit reached)" : capitalized(STEP_NAMES[step.kind] ?? step.kind);
  const cellState = cell && (cell.status === "suspended" ? `suspended on ${cell.pending.length} request${cell.pending.length === 1 ? "" : "s"}` : cell.status);
  const answers = Object.entries(step.answers ?? {});
  const blocks = codeBlocks(step);
  return (
    <article id={stepAnchor(step)} class={`step step-${kind === "model call" ? "model" : kind}`} tabIndex={-1}>
      <h4>
        <span class="step-kind">{title}</span>{" "}
        <Facts items={[`iteration ${step.iteration}`, took, modelOf(step.model, step.requested_model), tokens(step), cellState]} />
      </h4>
      {blocks.map((code, i) => (
        <div key={i}>
          {blocks.length > 1 && <p class="block-label">Block {i + 1}</p>}
          <Code code={code} label={blocks.length > 1 ? `Block ${i + 1} of ${blocks.length}, iteration ${step.iteration}` : `Code written in iteration ${step.iteration}`} />
        </div>
      ))}
      {model && blocks.length === 0 && step.reply && <Text text={step.reply} label="Model reply" />}
      {(step.notes ?? []).map((note, i) => (
        <p key={i} class="note">
          <strong>Note to the model:</strong> {note}
        </p>
      ))}
      <CellOutput step={step} />
      {step.retrieval && <Retrieval detail={step.retrieval} />}
      {cell?.final != null && (
        <p class="final">
          <strong>Final:</strong> {clip(cell.final, 600)}
        </p>
      )}
      {cell && cell.used_sections.length > 0 && <p class="facts">Sections used: {cell.used_sections.join(", ")}</p>}
      {step.error && <Text tone="error" text={step.error} label="Error" />}
      {step.kind === "resume" && answers.length > 0 && <p class="facts">Resumed with {answers.length} answer{answers.length === 1 ? "" : "s"}.</p>}
      {(step.prompt || (blocks.length > 0 && step.reply)) && (
        <details class="more">
          <summary>Prompt and full reply</summary>
          {step.prompt && <Text text={step.prompt} label="Prompt sent to the model" />}
          {step.reply && <Text text={step.reply} label="Full model reply" />}
        </details>
      )}
    </article>
  );
}

function FanOutEntry({ item, stopped }: { item: FanOutItem; stopped: boolean }) {
  const badge = <span class="badge">#{item.index + 1}</span>;
  if (item.child) return <NodeCard node={item.child} badge={badge} stopped={stopped} />;
  return (
    <div class="leaf">
      <p>
        {badge} <strong>{item.request.kind}_query</strong> {clip(item.request.question, 160)}
        {item.request.model && <span class="facts"> · model={item.request.model}</span>}
      </p>
      {item.leaf ? <StepCard step={item.leaf} /> : <p class="facts">{stopped ? "stopped" : "waiting for the model…"}</p>}
    </div>
  );
}

function FanOut({ entry, stopped }: { entry: Extract<Entry, { type: "fanout" }>; stopped: boolean }) {
  // rlm_query at the depth bound is answered by a single model call, like llm_query.
  const calls = entry.items.filter((i) => i.leaf || i.request.kind === "llm").length;
  const subs = entry.items.length - calls;
  const parts = [subs && `${subs} sub-quer${subs === 1 ? "y" : "ies"}`, calls && `${calls} model call${calls === 1 ? "" : "s"}`];
  return (
    <section class="fanout" aria-label={`Fan-out of iteration ${entry.after.iteration}`}>
      <h4>
        Fan-out in iteration {entry.after.iteration}: {parts.filter(Boolean).join(" and ")}
        {entry.items.length > 1 && ", run in parallel"}
      </h4>
      <ol>
        {entry.items.map((item) => (
          <li key={item.request.id}>
            <FanOutEntry item={item} stopped={stopped} />
            {item.answer !== undefined && (
              <p class="answer-line">
                <strong>Answer #{item.index + 1}:</strong> {clip(item.answer, 300)}
              </p>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}

/** One (sub-)query: its question, its steps in order with their fan-outs, its answer. */
export function NodeCard({ node, badge, stopped }: { node: TraceNode; badge?: preact.ComponentChild; stopped: boolean }) {
  const { meta, result } = node;
  const state = outcome(node, stopped);
  const calls = node.steps.reduce((n, s) => n + (s.usage?.model_calls ?? 0), 0);
  const duration = result ? seconds(result.duration_seconds) : null;
  return (
    <details id={nodeAnchor(meta.instance_id)} class={`node depth-${Math.min(meta.depth, 3)}`} open={meta.depth === 0}>
      <summary>
        {badge} <span class={`state ${state.tone}`}>{state.text}</span> <span class="question">{clip(meta.question, 140)}</span>{" "}
        <Facts
          items={[
            duration,
            `${calls} model call${calls === 1 ? "" : "s"}`,
            typeof result?.cost === "number" && money(result.cost),
            meta.depth > 0 && chars(meta.context_chars),
            meta.depth > 0 && modelOf(meta.model, meta.requested_model),
            `depth ${meta.depth}`,
          ]}
        />
      </summary>
      <div class="node-body">
        <p class="facts">
          {meta.instance_id} · {chars(meta.context_chars)} of context
        </p>
        {meta.question.length > 140 && <Text text={meta.question} label="Question" />}
        {orderedEntries(node).map((entry) =>
          entry.type === "step" ? (
            <StepCard key={`s${entry.step.step}`} step={entry.step} />
          ) : (
            <FanOut key={`f${entry.after.step}`} entry={entry} stopped={stopped} />
          ),
        )}
        {result && (
          <div class="node-answer">
            <strong>{meta.depth === 0 ? "Answer" : "Sub-query answer"}:</strong> <Text text={result.answer} label="Answer" />
            {result.error && <Text tone="error" text={result.error} label="Error" />}
          </div>
        )}
      </div>
    </details>
  );
}
