// Polling that stops by itself: each round waits for the previous one, backs off while
// nothing changes, and ends when the caller says the thing it watches is finished.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";

export interface Polled<T> {
  data: T | null;
  error: ApiError | Error | null;
  /** True once the watched thing reached a final state (or cannot be found). */
  settled: boolean;
  /** Ask for a round now (after the user did something, e.g. cancel). */
  refresh: () => void;
}

export interface PollOptions<T> {
  fetch: () => Promise<T>;
  /** Stop polling once this is true of a result. */
  done: (data: T) => boolean;
  /** Some value that changes when the data does, to back off while it stays put. */
  fingerprint?: (data: T) => string;
  fastMs?: number;
  slowMs?: number;
}

/** Fast while things change, slower while they stay put, and never faster than twice what a
 * round costs (a wide tree's trace is heavy to read). */
export function nextDelay(previous: number, changed: boolean, roundMs: number, fastMs: number, slowMs: number): number {
  return Math.max(changed ? fastMs : Math.min(previous * 1.5, slowMs), 2 * roundMs);
}

export function usePolling<T>(key: string | null, options: PollOptions<T>): Polled<T> {
  const [state, setState] = useState<Omit<Polled<T>, "refresh">>({ data: null, error: null, settled: false });
  const latest = useRef(options);
  latest.current = options;
  const wake = useRef<() => void>(() => {});

  useEffect(() => {
    setState({ data: null, error: null, settled: false });
    if (key === null) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let delay = latest.current.fastMs ?? 700;
    let last = "";
    let running = false;

    const round = async () => {
      if (stopped || running) return;
      running = true;
      clearTimeout(timer);
      const { fetch, done, fingerprint, fastMs = 700, slowMs = 3000 } = latest.current;
      let finished = false;
      const started = performance.now();
      try {
        const data = await fetch();
        if (stopped) return;
        finished = done(data);
        const print = fingerprint ? fingerprint(data) : JSON.stringify(data);
        delay = nextDelay(delay, print !== last, performance.now() - started, fastMs, slowMs);
        last = print;
        setState({ data, error: null, settled: finished });
      } catch (error) {
        if (stopped) return;
        finished = error instanceof ApiError && error.status === 404;
        delay = Math.min(delay * 2, slowMs);
        setState((s) => ({ ...s, error: error as Error, settled: finished }));
      } finally {
        running = false;
      }
      if (!finished && !stopped) timer = setTimeout(round, delay);
    };

    wake.current = () => {
      delay = latest.current.fastMs ?? 700;
      void round();
    };
    void round();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [key]);

  return { ...state, refresh: () => wake.current() };
}
