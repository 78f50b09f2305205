import { useRef, useState } from "preact/hooks";
import { ApiError, sectionText } from "../api";
import type { Source } from "../types";
import { Text } from "./Code";

type Shown = { title: string; text?: string; problem?: string };

/** The sections an answer relied on; each opens its text from the stored corpus. */
export function Sources({ sources, corpusId }: { sources: Source[]; corpusId: string | null }) {
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
        {shown?.text !== undefined && <Text text={shown.text} label={`Text of section ${shown.title}`} />}
        {shown?.problem && <p role="alert">{shown.problem}</p>}
        {shown && shown.text === undefined && !shown.problem && <p>Loading…</p>}
        <form method="dialog">
          <button type="submit">Close</button>
        </form>
      </dialog>
    </div>
  );
}
