// The function app's HTTP API, as the UI calls it. In Azure the API routes need a function
// key: when one answers 401 the UI asks for the key once, keeps it for the browser tab
// (sessionStorage) and sends it as `x-functions-key` from then on.

import type {
  BatchListing,
  BatchRow,
  BatchStatus,
  CompareCancelled,
  CompareStatus,
  CorpusSource,
  Document,
  QueryListing,
  QueryOptions,
  QueryStatus,
  SectionText,
  StartedQuery,
  StoredCorpus,
  TraceNode,
} from "./types";

export const API_BASE = "/api";
const KEY_STORAGE = "rlm.functionKey";
export const KEY_HEADER = "x-functions-key";

export interface FieldProblem {
  field: string;
  problem: string;
}

/** A response that was not 2xx, with the app's `{error, details}` body when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: unknown = undefined,
  ) {
    super(message);
  }

  get problems(): FieldProblem[] {
    return Array.isArray(this.details) ? (this.details as FieldProblem[]).filter((d) => d && typeof d.field === "string") : [];
  }
}

/** Asks the person for a key; resolves to null when they decline. Set by the app shell. */
export type KeyPrompt = (reason: string) => Promise<string | null>;
let keyPrompt: KeyPrompt | null = null;
let asking: Promise<string | null> | null = null;

export function setKeyPrompt(prompt: KeyPrompt | null): void {
  keyPrompt = prompt;
}

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function rememberKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** A `?code=` in the UI's own address is the function key: keep it, then drop it from the URL. */
export function adoptKeyFromUrl(): void {
  const url = new URL(window.location.href);
  const code = url.searchParams.get("code");
  if (!code) return;
  rememberKey(code);
  url.searchParams.delete("code");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

export function withKey(headers: HeadersInit | undefined, key: string | null): Headers {
  const result = new Headers(headers);
  if (key) result.set(KEY_HEADER, key);
  return result;
}

/** One prompt at a time: parallel requests that all got a 401 wait for the same answer. */
function askForKey(reason: string): Promise<string | null> {
  if (!keyPrompt) return Promise.resolve(null);
  asking ??= keyPrompt(reason).finally(() => {
    asking = null;
  });
  return asking;
}

let clockSkew = 0;

/** The server's clock, as its `Date` headers tell it: live timelines end at its "now". */
export function serverNow(): number {
  return Date.now() + clockSkew;
}

function noteServerDate(response: Response): void {
  const date = Date.parse(response.headers.get("date") ?? "");
  // Date has one-second resolution: only a larger difference is a real skew.
  if (Number.isFinite(date)) clockSkew = Math.abs(date - Date.now()) > 2000 ? date - Date.now() : 0;
}

export async function send(path: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const key = storedKey();
    const response = await fetch(API_BASE + path, { ...init, headers: withKey(init.headers, key) });
    noteServerDate(response);
    if (response.status !== 401 || attempt >= 3) return response;
    const entered = await askForKey(key ? "The function key was refused. Enter a valid key." : "This deployment needs a function key.");
    if (!entered) return response;
    rememberKey(entered);
  }
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function failure(response: Response, body: unknown): ApiError {
  if (body && typeof body === "object" && "error" in body) {
    const { error, details } = body as { error: unknown; details?: unknown };
    return new ApiError(response.status, String(error), details);
  }
  const reason = response.status === 401 ? "a function key is needed" : response.statusText || "request failed";
  return new ApiError(response.status, `${response.status}: ${reason}`);
}

export async function getJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await send(path, init);
  const body = await readBody(response);
  if (!response.ok) throw failure(response, body);
  return body as T;
}

export function postJson<T>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
  return getJson<T>(path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
}

/** A fresh key per submission: a retried POST (after a key prompt, say) starts nothing twice. */
function idempotency(): Record<string, string> {
  const key = globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return { "Idempotency-Key": key };
}

/** A route a deployment may not have yet answers 404 (or 405 where only another method is
 * routed): null then, rather than an error. */
async function optional<T>(call: Promise<T>): Promise<T | null> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
    throw error;
  }
}

const enc = encodeURIComponent;

export interface QueryBody extends CorpusSource {
  question: string;
  options?: QueryOptions;
}

export const startQuery = (body: QueryBody) => postJson<StartedQuery>("/queries", body, idempotency());
export const queryStatus = (id: string) => getJson<QueryStatus>(`/queries/${enc(id)}`);
/** Null until the query has written its first record. */
export const queryTrace = (id: string) => optional(getJson<TraceNode>(`/queries/${enc(id)}/trace`));
export const cancelQuery = (id: string) => postJson<{ status: string }>(`/queries/${enc(id)}/cancel`, {});
export const listQueries = (limit = 20) =>
  optional(getJson<{ queries: QueryListing[] }>(`/queries?limit=${limit}`)).then((r) => r?.queries ?? null);

export const uploadCorpus = (body: { text: string } | { documents: Document[] }) => postJson<StoredCorpus>("/corpora", body);
export const listCorpora = () => optional(getJson<{ corpora: StoredCorpus[] }>("/corpora")).then((r) => r?.corpora ?? null);
export const sectionText = (corpusId: string, title: string) =>
  getJson<SectionText>(`/corpora/${enc(corpusId)}/sections?title=${enc(title)}`);

export interface CompareBody extends QueryBody {
  strategies: string[];
  expected?: string;
  judge?: boolean;
}

export const startCompare = (body: CompareBody) => postJson<{ compare_id: string }>("/compare", body, idempotency());
export const compareStatus = (id: string) => getJson<CompareStatus>(`/compare/${enc(id)}`);
export const cancelCompare = (id: string) => postJson<CompareCancelled>(`/compare/${enc(id)}/cancel`, {});

export const listBatches = () => optional(getJson<{ batches: BatchListing[] }>("/batches")).then((r) => r?.batches ?? null);
export const batchStatus = (id: string) => getJson<BatchStatus>(`/batches/${enc(id)}`);
export async function batchRows(id: string): Promise<BatchRow[] | null> {
  const response = await send(`/batches/${enc(id)}/results`);
  if (response.status === 404) return null;
  if (!response.ok) throw failure(response, await readBody(response));
  return parseJsonLines<BatchRow>(await response.text());
}

export function parseJsonLines<T>(text: string): T[] {
  return text
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as T);
}
