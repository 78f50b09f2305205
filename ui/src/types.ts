// The shapes the function app's HTTP API returns (shared/models.py, shared/trace.py,
// rlm_activities/*), and the contract routes the UI builds to. Optional fields are ones
// a deployment may not send yet (cost, listings, compare, per-strategy summaries).

export interface TokenUsage {
  model_calls: number;
  prompt_tokens: number;
  /** Part of the prompt tokens the provider served from its prompt cache. */
  cached_tokens?: number;
  completion_tokens: number;
  reasoning_tokens?: number;
  /** In the price table's currency; absent or null when no call was priced. */
  cost?: number | null;
}

export type ForcedReason = "iterations" | "tokens" | "cost" | "deadline";

export interface Source {
  title: string;
  document_id?: string | null;
}

export interface PendingRequest {
  id: string;
  kind: "rlm" | "llm";
  question: string;
  sub_context_chars?: number;
  /** The model the code named with `model=`, if it did. */
  model?: string | null;
}

export type CellStatus = "done" | "suspended" | "error" | "timeout";

/** Where one fenced block's output ends in its cell's streams, and the error it raised. */
export interface BlockEnd {
  stdout_end: number;
  stderr_end: number;
  error?: string | null;
}

export interface CellResult {
  cell_id: string;
  status: CellStatus;
  stdout: string;
  stderr: string;
  pending: PendingRequest[];
  final?: string | null;
  used_sections: string[];
  error?: string | null;
  blocks?: BlockEnd[];
}

export type StepKind = "generate" | "execute" | "resume" | "leaf" | "forced" | "index" | "retrieve" | "rewrite" | "answer" | "judge";

/** A passage a retrieval baseline's step found, by rank. */
export interface RetrievedPassage {
  passage: number;
  title: string;
  document_id?: string | null;
  score: number;
}

export interface RetrievalDetail {
  query?: string | null;
  hits: RetrievedPassage[];
  built: string[];
  reused: string[];
}

export interface StepRecord {
  instance_id: string;
  step: number;
  iteration: number;
  kind: StepKind;
  started_at: string;
  ended_at: string;
  model?: string | null;
  /** What the code asked for with `model=`, when that differs from the model used. */
  requested_model?: string | null;
  prompt?: string | null;
  reply?: string | null;
  /** The reply's code, block by block (each runs on its own, in order). */
  blocks?: string[];
  /** What the model was told about its reply, above the cell's output. */
  notes?: string[];
  code?: string | null;
  usage?: TokenUsage | null;
  cell?: CellResult | null;
  answers: Record<string, string>;
  /** For a leaf step: the pending request it answered. */
  request_id?: string | null;
  /** For a retrieval baseline's step: what it searched and found. */
  retrieval?: RetrievalDetail | null;
  error?: string | null;
  cost?: number | null;
}

export interface InstanceMeta {
  instance_id: string;
  root_id: string;
  parent_id: string | null;
  depth: number;
  question: string;
  corpus_id: string;
  context_chars: number;
  started_at: string;
  model?: string | null;
  requested_model?: string | null;
}

export interface QueryResult {
  answer: string;
  answer_key?: string | null;
  forced: boolean;
  /** Which limit ran out when the answer was forced. */
  forced_reason?: ForcedReason | null;
  failed: boolean;
  iterations: number;
  sources: Source[];
  usage: Record<string, TokenUsage>;
  sub_queries: number;
  duration_seconds: number;
  instance_id: string;
  trace: string;
  error?: string | null;
  cost?: number | null;
}

export interface TraceNode {
  meta: InstanceMeta;
  result: QueryResult | null;
  steps: StepRecord[];
  children: TraceNode[];
}

export interface Progress {
  phase: string;
  depth: number;
  max_depth: number;
  iteration: number;
  max_iterations: number;
  sub_queries_running: number;
  sub_queries_done: number;
  tokens: number;
  cached_tokens?: number;
  cost?: number | null;
  max_tokens?: number | null;
  max_cost?: number | null;
  forced_reason?: ForcedReason | null;
  elapsed_seconds?: number;
  /** The first line of the code running now. */
  code?: string | null;
  /** The query's OpenTelemetry trace id (its operation id in Application Insights). */
  trace_id?: string | null;
}

export type RuntimeStatus = "Pending" | "Running" | "Completed" | "Failed" | "Terminated" | "ContinuedAsNew" | "Suspended";

export interface QueryStatus {
  instance_id: string;
  status: RuntimeStatus;
  progress: Progress | null;
  result?: QueryResult;
  error?: unknown;
}

export interface StartedQuery {
  id: string;
  statusQueryGetUri: string;
}

export interface Document {
  title: string;
  content: string;
  id?: string;
}

export interface CorpusSource {
  corpus?: string;
  documents?: Document[];
  corpus_id?: string;
}

export interface QueryOptions {
  max_iterations?: number;
  max_depth?: number;
  sub_max_iterations?: number;
  truncate_chars?: number;
  root_model?: string;
  sub_model?: string;
  max_tokens?: number;
  max_cost?: number;
  deadline_seconds?: number;
}

export interface StoredCorpus {
  corpus_id: string;
  chars: number;
  sections: number;
  created?: string;
}

export interface SectionText {
  corpus_id: string;
  title: string;
  text: string;
}

export interface QueryListing {
  instance_id: string;
  status: RuntimeStatus;
  question: string;
  created: string;
}

export const STRATEGIES = ["rlm", "keyword", "vector", "hybrid", "agentic"] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface Scores {
  exact_match?: boolean | number | null;
  f1?: number | null;
  relevance?: number | null;
  groundedness?: number | null;
  coherence?: number | null;
}

export interface StrategyAnswer {
  strategy: string;
  answer: string | null;
  /** The answer was longer than a comparison carries inline; its trace has all of it. */
  answer_truncated?: boolean;
  sources: Source[];
  /** How many sources there were, when more than `sources` lists. */
  sources_total?: number;
  latency_seconds: number | null;
  usage: TokenUsage | null;
  cost: number | null;
  scores: Scores | null;
  instance_id: string | null;
  error: string | null;
}

/** The judge's pick between two strategies' answers. */
export interface Preference {
  a: string;
  b: string;
  winner: string;
}

/** The retrieval indexes a comparison built (or found built) before its baselines ran. */
export interface IndexBuild {
  passages: number;
  context_chars: number;
  built: string[];
  reused: string[];
  usage: TokenUsage;
}

export interface CompareResult {
  question: string;
  expected: string | null;
  strategies: StrategyAnswer[];
  preference: Preference[];
  judge_usage?: TokenUsage;
  index?: IndexBuild | null;
  /** Of everything: the strategies, the index build and the judge; null when nothing was priced. */
  cost?: number | null;
}

/** What `POST /api/compare/{id}/cancel` stopped. */
export interface CompareCancelled {
  compare_id: string;
  status: string;
  strategies: string[];
  sub_queries: number;
}

export interface CompareProgress {
  phase: string;
  /** Each strategy's state: running, done, failed, ... */
  strategies: Record<string, string>;
}

export interface CompareStatus {
  compare_id: string;
  status: RuntimeStatus;
  progress: CompareProgress | null;
  result?: CompareResult;
  error?: unknown;
}

export interface Latency {
  mean: number;
  p50: number;
  p95: number;
  max: number;
}

export interface JudgeScores {
  relevance?: number | null;
  groundedness?: number | null;
  coherence?: number | null;
}

/** How a strategy fared in the judge's pairwise preferences; a tie counts half of the win rate. */
export interface PreferenceTally {
  wins: number;
  ties: number;
  losses: number;
  win_rate: number | null;
}

/** Exact match and F1 over the questions of one kind (`kind` in the batch's questions). */
export interface KindScores {
  count: number;
  accuracy: number | null;
  f1: number | null;
}

export interface StrategySummary {
  accuracy: number | null;
  f1?: number | null;
  judge?: JudgeScores | null;
  preference?: PreferenceTally | null;
  kinds?: Record<string, KindScores> | null;
  latency_seconds?: Latency | null;
  cost?: number | null;
  usage?: TokenUsage | null;
}

export interface BatchSummary {
  batch_id: string;
  count: number;
  answered: number;
  failed: number;
  with_expected: number;
  correct: number;
  accuracy: number | null;
  f1?: number | null;
  usage: TokenUsage;
  total_tokens: number;
  latency_seconds: Latency | null;
  cost?: number | null;
  strategies?: Record<string, StrategySummary>;
  kinds?: Record<string, KindScores> | null;
  started_at: string;
  ended_at: string;
}

export interface BatchProgress {
  phase: string;
  total: number;
  done: number;
  failed: number;
  running: number;
}

export interface BatchStatus {
  batch_id: string;
  status: RuntimeStatus;
  progress: BatchProgress | null;
  summary?: BatchSummary;
  error?: unknown;
}

export interface BatchListing {
  batch_id: string;
  status: RuntimeStatus;
  questions: number;
  created: string;
  progress?: BatchProgress | null;
  summary?: Partial<BatchSummary> | null;
}

export interface BatchRow {
  id: string;
  question: string;
  answer: string | null;
  expected: string | null;
  correct: boolean | null;
  f1?: number | null;
  forced?: boolean;
  iterations: number | null;
  usage: TokenUsage;
  sources: string[];
  duration_seconds: number | null;
  instance_id: string;
  error: string | null;
  strategy?: string;
  kind?: string | null;
  /** The judge's preference between this answer and each other strategy's to the same question. */
  preference?: Record<string, "win" | "tie" | "loss">;
  cost?: number | null;
}

export const TERMINAL: readonly RuntimeStatus[] = ["Completed", "Failed", "Terminated"];

export function isTerminal(status: RuntimeStatus | undefined): boolean {
  return status !== undefined && TERMINAL.includes(status);
}
