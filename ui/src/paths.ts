// Where the app lives: the function app serves it under /api/ui/ (rlm_activities/web_ui.py).
export const BASE = "/api/ui";

export const paths = {
  ask: (queryId?: string) => (queryId ? `${BASE}/?q=${encodeURIComponent(queryId)}` : `${BASE}/`),
  compare: (compareId?: string, corpusId?: string) =>
    compareId ? `${BASE}/compare?id=${encodeURIComponent(compareId)}${corpusId ? `&corpus=${corpusId}` : ""}` : `${BASE}/compare`,
  benchmarks: (batchId?: string) => (batchId ? `${BASE}/benchmarks/${encodeURIComponent(batchId)}` : `${BASE}/benchmarks`),
  trace: (queryId?: string) => (queryId ? `${BASE}/trace/${encodeURIComponent(queryId)}` : `${BASE}/trace`),
};
