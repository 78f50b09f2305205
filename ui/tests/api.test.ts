import { describe, expect, it } from "vitest";
import { ApiError, KEY_HEADER, parseJsonLines, withKey } from "../src/api";
import { corpusSource, EMPTY_CORPUS, filesToCorpus } from "../src/components/CorpusPicker";

describe("requests", () => {
  it("sends the function key only when there is one", () => {
    expect(withKey({ accept: "x" }, "k1").get(KEY_HEADER)).toBe("k1");
    expect(withKey({ accept: "x" }, null).has(KEY_HEADER)).toBe(false);
  });

  it("keeps the field problems of a 400", () => {
    const error = new ApiError(400, "invalid query request", [{ field: "options.max_depth", problem: "too deep" }, "noise"]);
    expect(error.problems).toEqual([{ field: "options.max_depth", problem: "too deep" }]);
  });

  it("reads JSONL rows, skipping blank lines", () => {
    expect(parseJsonLines<{ id: number }>('{"id": 1}\n\n{"id": 2}\n')).toEqual([{ id: 1 }, { id: 2 }]);
  });
});

describe("corpus choice", () => {
  it("names exactly one source, or says what is missing", () => {
    expect(corpusSource({ ...EMPTY_CORPUS, text: "## a\nb" })).toEqual({ corpus: "## a\nb" });
    expect(corpusSource({ ...EMPTY_CORPUS, text: "  " })).toMatch(/Paste/);
    expect(corpusSource({ ...EMPTY_CORPUS, mode: "stored", storedId: "f".repeat(64) })).toEqual({ corpus_id: "f".repeat(64) });
    expect(corpusSource({ ...EMPTY_CORPUS, mode: "stored", storedId: "nope" })).toMatch(/64 hex/);
    expect(corpusSource({ ...EMPTY_CORPUS, mode: "upload" })).toMatch(/files/);
  });

  it("turns files into a text corpus, a JSON document list, or one document per file", async () => {
    expect(await filesToCorpus([new File(["## a\nb"], "notes.txt")])).toEqual({ text: "## a\nb" });
    const json = new File([JSON.stringify([{ title: "t", content: "c" }])], "docs.json");
    expect(await filesToCorpus([json])).toEqual({ documents: [{ title: "t", content: "c" }] });
    const two = [new File(["one"], "a.md"), new File(["two"], "b.md")];
    expect(await filesToCorpus(two)).toEqual({ documents: [{ title: "a.md", content: "one" }, { title: "b.md", content: "two" }] });
    await expect(filesToCorpus([new File(['{"x": 1}'], "bad.json")])).rejects.toThrow(/title, content/);
  });
});
