import { useEffect, useState } from "preact/hooks";
import { listCorpora, uploadCorpus } from "../api";
import { chars, count, when } from "../format";
import type { CorpusSource, Document, StoredCorpus } from "../types";

export type CorpusMode = "paste" | "upload" | "stored";

export interface CorpusChoice {
  mode: CorpusMode;
  text: string;
  uploaded: StoredCorpus | null;
  storedId: string;
}

export const EMPTY_CORPUS: CorpusChoice = { mode: "paste", text: "", uploaded: null, storedId: "" };

/** The request fields for the chosen corpus, or a sentence saying what is missing. */
export function corpusSource(choice: CorpusChoice): CorpusSource | string {
  if (choice.mode === "paste") return choice.text.trim() ? { corpus: choice.text } : "Paste the corpus text first.";
  if (choice.mode === "upload") return choice.uploaded ? { corpus_id: choice.uploaded.corpus_id } : "Choose the files to upload first.";
  const id = choice.storedId.trim();
  return /^[0-9a-f]{64}$/.test(id) ? { corpus_id: id } : "Pick a stored corpus (its id is 64 hex characters).";
}

/** Files as a corpus: one text file as it is, a JSON list of {title, content}, or many files as documents. */
export async function filesToCorpus(files: File[]): Promise<{ text: string } | { documents: Document[] }> {
  if (files.length === 1 && !files[0].name.toLowerCase().endsWith(".json")) return { text: await files[0].text() };
  if (files.length === 1) {
    const parsed: unknown = JSON.parse(await files[0].text());
    const list = Array.isArray(parsed) ? parsed : (parsed as { documents?: unknown }).documents;
    if (!Array.isArray(list)) throw new Error("a JSON corpus is a list of {title, content} documents");
    return { documents: list as Document[] };
  }
  return { documents: await Promise.all(files.map(async (f) => ({ title: f.name, content: await f.text() }))) };
}

const MODES: { mode: CorpusMode; label: string }[] = [
  { mode: "paste", label: "Paste text" },
  { mode: "upload", label: "Upload files" },
  { mode: "stored", label: "Stored corpus" },
];

export function CorpusPicker({ value, onChange, idPrefix }: { value: CorpusChoice; onChange: (c: CorpusChoice) => void; idPrefix: string }) {
  const [stored, setStored] = useState<StoredCorpus[] | null | undefined>(undefined);
  const [upload, setUpload] = useState<{ busy: boolean; problem?: string }>({ busy: false });
  const set = (patch: Partial<CorpusChoice>) => onChange({ ...value, ...patch });

  useEffect(() => {
    if (value.mode === "stored" && stored === undefined) listCorpora().then(setStored, () => setStored(null));
  }, [value.mode]);

  const onFiles = async (event: Event) => {
    const files = [...((event.currentTarget as HTMLInputElement).files ?? [])];
    if (files.length === 0) return;
    setUpload({ busy: true });
    try {
      const uploaded = await uploadCorpus(await filesToCorpus(files));
      set({ uploaded });
      setUpload({ busy: false });
    } catch (error) {
      set({ uploaded: null });
      setUpload({ busy: false, problem: (error as Error).message });
    }
  };

  return (
    <fieldset class="corpus">
      <legend>Corpus</legend>
      <div class="modes">
        {MODES.map(({ mode, label }) => (
          <label key={mode} class={value.mode === mode ? "mode selected" : "mode"}>
            <input type="radio" name={`${idPrefix}-mode`} value={mode} checked={value.mode === mode} onChange={() => set({ mode })} />
            {label}
          </label>
        ))}
      </div>
      {value.mode === "paste" && (
        <label class="field">
          <span>Corpus text</span>
          <span class="hint" id={`${idPrefix}-text-hint`}>
            Start each document with a <code>## Title</code> line: titles are what answers cite as sources.
          </span>
          <textarea
            name="corpus"
            rows={8}
            value={value.text}
            aria-describedby={`${idPrefix}-text-hint`}
            onInput={(e) => set({ text: (e.currentTarget as HTMLTextAreaElement).value })}
            placeholder={"## Harbor station\nThe harbor gauge read 4.2 m on 3 March.\n\n## Ridge station\n…"}
          />
        </label>
      )}
      {value.mode === "upload" && (
        <div class="field">
          <label for={`${idPrefix}-files`}>Files to upload</label>
          <span class="hint" id={`${idPrefix}-files-hint`}>
            One text file (with <code>## Title</code> sections), a JSON list of <code>{"{title, content}"}</code> documents, or several
            files, each one document titled by its name. They are stored once and queried by id.
          </span>
          <input id={`${idPrefix}-files`} type="file" multiple accept=".txt,.md,.json,.csv,.log,text/*" aria-describedby={`${idPrefix}-files-hint`} onChange={onFiles} />
          <p class="facts" role="status">
            {upload.busy && "Uploading…"}
            {!upload.busy && value.uploaded && `Stored: ${chars(value.uploaded.chars)} in ${count(value.uploaded.sections)} sections (corpus ${value.uploaded.corpus_id.slice(0, 12)}…).`}
          </p>
          {upload.problem && <p role="alert" class="notice bad">Upload failed: {upload.problem}</p>}
        </div>
      )}
      {value.mode === "stored" && (
        <div class="field">
          {stored && stored.length > 0 ? (
            <>
              <label for={`${idPrefix}-stored`}>Corpus to query</label>
              <select id={`${idPrefix}-stored`} value={value.storedId} onChange={(e) => set({ storedId: (e.currentTarget as HTMLSelectElement).value })}>
                <option value="">Choose one…</option>
                {stored.map((c) => (
                  <option key={c.corpus_id} value={c.corpus_id}>
                    {c.corpus_id.slice(0, 12)}… · {chars(c.chars)}, {count(c.sections)} sections{c.created ? ` · ${when(c.created)}` : ""}
                  </option>
                ))}
              </select>
            </>
          ) : (
            <>
              <label for={`${idPrefix}-stored`}>Corpus id</label>
              <span class="hint">
                {stored === undefined ? "Loading the stored corpora…" : stored === null ? "This deployment does not list its corpora: enter the id an upload returned." : "No corpora stored yet: upload one, or enter an id."}
              </span>
              <input id={`${idPrefix}-stored`} type="text" spellcheck={false} value={value.storedId} onInput={(e) => set({ storedId: (e.currentTarget as HTMLInputElement).value })} />
            </>
          )}
        </div>
      )}
    </fieldset>
  );
}
