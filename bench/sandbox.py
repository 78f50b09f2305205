"""Local sandbox costs: session start, per-cell overhead, a suspend/resume round trip, loading a 100 MB corpus, closing.

Run: `python -m bench.sandbox [--runs N] [--corpus-mb M]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from shared.sandbox import CellLimits, SandboxExecutor
from shared.sandbox.local import LocalBackend
from shared.storage import FileStore


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:7.2f} ms   p95 {p95 * 1000:7.2f} ms   (n={len(ordered)})"


def timed(runs: int, operation: Callable[[int], object]) -> list[float]:
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        operation(i)
        samples.append(time.perf_counter() - started)
    return samples


def proc_status_mb(pid: int, field: str) -> float:
    """A memory field of /proc/PID/status (VmHWM: resident high-water mark; RssAnon: heap, not file pages)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def runtime_pid(backend: LocalBackend, session_id: str) -> int:
    """The host pid of the session's runtime (under bubblewrap, the sandbox's outer pid is bwrap's)."""
    process = backend.process(session_id)
    assert process is not None
    members = process.cgroup.pids() if process.cgroup is not None else {process.pid}
    for pid in sorted(members):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if not argv[0].endswith(b"bwrap") and any(a.endswith(b"child.py") for a in argv):
            return pid
    raise RuntimeError(f"no runtime process in session {session_id}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--corpus-mb", type=int, default=100)
    args = parser.parse_args()
    limits = CellLimits(timeout_seconds=120, memory_mb=4096, output_max_chars=1_000_000)
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
        store = FileStore(Path(tmp) / "store")
        backend = LocalBackend(limits)
        executor = SandboxExecutor(backend, store, limits)
        try:
            small = store.put_corpus("## Doc\nhello\n")
            started = time.perf_counter()
            executor.open("bench-first", small)
            print(f"first session start (+ isolation probe): {(time.perf_counter() - started) * 1000:.1f} ms")
            starts = timed(10, lambda i: executor.open(f"bench-start-{i}", small))
            print(f"session start (process + tiny context): {percentiles(starts)}")
            for i in range(10):
                executor.close_tree(f"bench-start-{i}")
            executor.open("bench-small", small)

            raw = timed(args.runs, lambda i: backend.execute("bench-small", f"raw{i}", "x = 1", []))
            print(f"trivial cell, backend round trip:       {percentiles(raw)}")
            journaled = timed(args.runs, lambda i: executor.execute("bench-small", f"j{i}", "x = 1"))
            print(f"trivial cell, executor (with journal):  {percentiles(journaled)}")

            def round_trip(i: int) -> None:
                first = executor.execute("bench-small", f"s{i}", "a = rlm_query('q')")
                executor.resume("bench-small", f"s{i}", {first.pending[0].id: "A"})

            suspend = timed(max(args.runs // 5, 10), round_trip)
            print(f"suspend + resume round trip:            {percentiles(suspend)}")

            line = "## Section\n" + "lorem ipsum dolor sit amet " * 37 + "\n"
            corpus = line * (args.corpus_mb * 1_000_000 // len(line))
            big = store.put_corpus(corpus)
            started = time.perf_counter()
            executor.open("bench-big", big)
            loaded = time.perf_counter() - started
            check = executor.execute("bench-big", "c1", "len(context)")
            assert check.stdout == f"{len(corpus)}\n", check
            print(f"load {len(corpus) / 1e6:.0f} MB corpus into a session:     {loaded * 1000:.0f} ms")
            big_pid, small_pid = runtime_pid(backend, "bench-big"), runtime_pid(backend, "bench-small")
            print(f"sandbox peak RSS with that corpus:      {proc_status_mb(big_pid, 'VmHWM'):.0f} MB"
                  f" (anonymous now: {proc_status_mb(big_pid, 'RssAnon'):.0f} MB; the rest is page cache)")
            print(f"sandbox peak RSS, tiny corpus:          {proc_status_mb(small_pid, 'VmHWM'):.0f} MB")
            big_process = backend.process("bench-big")
            if big_process is not None and big_process.cgroup is not None:
                print(f"session cgroup peak, that corpus:       {big_process.cgroup.memory_peak_bytes() / 2**20:.0f} MB"
                      " (every process of the session: bwrap, its init, the runtime)")
            started = time.perf_counter()
            executor.close_tree("bench-big")
            print(f"close a session (kill, cgroup, files):  {(time.perf_counter() - started) * 1000:.1f} ms")
        finally:
            backend.close()


if __name__ == "__main__":
    main()
