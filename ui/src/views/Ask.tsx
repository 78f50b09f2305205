import { useLocation } from "preact-iso";
import { useState } from "preact/hooks";
import { startQuery } from "../api";
import { CorpusPicker, corpusSource, EMPTY_CORPUS } from "../components/CorpusPicker";
import { OptionsFields } from "../components/Options";
import { Problems } from "../components/Problems";
import { QueryRun } from "../components/QueryRun";
import { usePageTitle } from "../hooks/usePageTitle";
import { paths } from "../paths";
import type { QueryOptions } from "../types";

export function AskView() {
  usePageTitle("Ask");
  const { query, route } = useLocation();
  const running = query.q || null;
  const [corpus, setCorpus] = useState(EMPTY_CORPUS);
  const [question, setQuestion] = useState("");
  const [options, setOptions] = useState<QueryOptions>({});
  const [problem, setProblem] = useState<Error | string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const source = corpusSource(corpus);
    if (typeof source === "string") return setProblem(source);
    if (!question.trim()) return setProblem("Write a question first.");
    setBusy(true);
    setProblem(null);
    try {
      const started = await startQuery({ question, options, ...source });
      route(paths.ask(started.id));
    } catch (error) {
      setProblem(error as Error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <h1>Ask</h1>
      <p class="lede">
        Ask a question over a corpus of any size. The model never reads the corpus in its prompt: it writes Python that explores the
        corpus in a sandbox, and hands parts of it to sub-queries that run in parallel. You can watch every step below while it works.
      </p>
      <form class="ask-form" onSubmit={submit} noValidate>
        <CorpusPicker value={corpus} onChange={setCorpus} idPrefix="ask" />
        <label class="field">
          <span>Question</span>
          <textarea name="question" rows={2} required value={question} onInput={(e) => setQuestion((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
        <OptionsFields value={options} onChange={setOptions} idPrefix="ask" />
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Starting…" : "Ask"}
          </button>
        </div>
        <Problems error={problem} />
      </form>
      {running && <QueryRun key={running} id={running} />}
    </>
  );
}
