import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, sectionText } from "../api";
import type { Source } from "../types";

type Shown = { title: string; text?: string; problem?: string };

/** Where the answer appears in a section: the parts between, and the matches themselves. */
export function markAnswer(text: string, answer: string | null | undefined): { text: string; match: boolean }[] {
  const needle = answer?.trim() ?? "";
  if (needle.length < 3 || needle.length > 200) return [{ text, match: false }];
  const parts: { text: string; match: boolean }[] = [];
  let at = 0;
  for (let found = text.indexOf(needle); found >= 0; found = text.indexOf(needle, at)) {
    if (found > at) parts.push({ text: text.slice(at, found), match: false });
    parts.push({ text: needle, match: true });
    at = found + needle.length;
  }
  if (at < text.length) parts.push({ text: text.slice(at), match: false });
  return parts;
}

function SectionBody({ text, answer, title }: { text: string; answer: string | null | undefined; title: string }) {
  const body = useRef<HTMLPreElement>(null);
  const parts = markAnswer(text, answer);
  useEffect(() => body.current?.querySelector("mark")?.scrollIntoView({ block: "center" }), [text]);
  return (
    <pre ref={body} class="text section-text" tabIndex={0} role="group" aria-label={`Text of section ${title}`}>
      {parts.map((p, i) => (p.match ? <mark key={i}>{p.text}</mark> : p.text))}
    </pre>
  );
}

/** The sections an answer relied on; each opens its text from the stored corpus, with the
 * answer marked where the section says it. */
export function Sources({ sources, corpusId, answer }: { sources: Source[]; corpusId: string | null; answer?: string | null }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [shown, setShown] = useState<Shown | null>(null);

  if (sources.length === 0) return <p class="facts">No sources: the code did not name the sections it used.</p>;

  const open = async (source: Source) => {
    setShown({ title: source.title });
    dialog.current?.showModal();
    if (!corpusId) return setShown({ title: source.title, problem: "The corpus of this answer is not known." });
    try {
      const section = await sectionText(corpusId, source.title);
      setShown({ title: source.title, text: section.text });
    } catch (error) {
      const problem =
        error instanceof ApiError && error.status === 404
          ? "This deployment cannot show section text (no section route), or the section is gone."
          : String((error as Error).message);
      setShown({ title: source.title, problem });
    }
  };

  return (
    <div class="sources">
      <h3>Sources</h3>
      <ul>
        {sources.map((source) => (
          <li key={source.title}>
            <button type="button" class="link" onClick={() => open(source)}>
              {source.title}
            </button>
            {source.document_id && <span class="facts"> ({source.document_id})</span>}
          </li>
        ))}
      </ul>
      <dialog ref={dialog} class="section-dialog" aria-labelledby="section-title" onClose={() => setShown(null)}>
        <h2 id="section-title">{shown?.title}</h2>
        {shown?.text !== undefined && <SectionBody text={shown.text} answer={answer} title={shown.title} />}
        {shown?.problem && <p role="alert">{shown.problem}</p>}
        {shown && shown.text === undefined && !shown.problem && <p>Loading…</p>}
        <form method="dialog">
          <button type="submit">Close</button>
        </form>
      </dialog>
    </div>
  );
}
