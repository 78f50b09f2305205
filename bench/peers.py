"""This project side by side with the reference RLM implementations, on the same tasks and
one scripted model server.

Peers: `ours` (`devhost ask` in-process: embedded Durable host, real Copilot CLI, local
sandbox), `rlms` (alexzhang13/rlm, its `local` REPL) and `dspy` (`dspy.RLM` with
`dspy.LocalInterpreter`: its default Deno sandbox needs the internet). The peers are pip-installed
into their own virtualenvs under a temporary folder (or `--venvs DIR`, kept for the next run);
each run is a fresh driver process (`bench/peer_*.py`) while the bench samples the RSS of its
whole process tree. Every figure comes from the scripted server's log or the driver's clock:

- overhead per iteration: the median gap between one model reply and the next request, over
  a query of trivial cells with an instant model;
- fan-out of 8 and 32 recursive sub-queries at 0.5 s per model call: makespan (first request
  to last reply; ideal 1.5 s), sub-query phase, peak calls in flight;
- needle in 1, 10 and 100 MB: time to answer, time to the first model call, peak RSS of the
  process tree, size of the first prompt;
- prompt tokens per iteration over a 12-iteration query, and how much of each request repeats
  the previous one (what a provider's prompt cache can reuse).

Run: `.venv/bin/python -m bench.peers [--quick] [--only ours,rlms,dspy] [--repeat N]
[--venvs DIR] [--json-out PATH]`, or `--report PATH` to print a saved run again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console

from bench import peer_dspy, peer_ours, peer_rlms, proctree
from bench.peer_protocol import Task, parse_result
from bench.peer_report import markdown, render
from bench.peer_workloads import NEEDLE, Workload, corpus_sizes, measure, workloads
from tests.support.model_server import ModelServer
from tests.support.rlm import filler_corpus

REPO = Path(__file__).resolve().parent.parent
PEERS: dict[str, ModuleType] = {m.NAME: m for m in (peer_ours, peer_rlms, peer_dspy)}
RUN_TIMEOUT_SECONDS = 1200
MODEL = "bench-model"
console = Console(stderr=True)


def install(peer: ModuleType, venvs: Path) -> tuple[str, str]:
    """A virtualenv with the peer's package, made with pip only; reused when it already holds it."""
    if peer is peer_ours:
        return sys.executable, _git("rev-parse", "--short", "HEAD")
    venv = venvs / peer.NAME
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    if not stamp.exists() or stamp.read_text() != peer.PACKAGE:
        console.log(f"installing {peer.PACKAGE} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", peer.PACKAGE],
                             capture_output=True, text=True)  # fmt: skip
        if pip.returncode != 0:
            raise SystemExit(f"pip could not install {peer.PACKAGE}:\n{pip.stdout}{pip.stderr}")
        stamp.write_text(peer.PACKAGE)
    version = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({peer.DISTRIBUTION!r}))"],
                             check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    return str(python), version


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def write_corpora(chosen: list[Workload], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, chars in corpus_sizes(chosen).items():
        console.log(f"writing corpus {name} ({chars / 1e6:g} MB)")
        paths[name] = folder / f"{name}.txt"
        paths[name].write_text(filler_corpus(chars, needle=NEEDLE if name != "small" else None), encoding="utf-8")
    return paths


def driver_env() -> dict[str, str]:
    """The bench's environment without this project's settings (each driver is told its model in
    the task, and runs in its own folder, away from any local.settings.json), and the repository
    on the path for `bench.peer_*`."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "AZURE_", "COPILOT_", "RLM_"))}
    return kept | {"PYTHONPATH": str(REPO)}


def _text(output: str | bytes | None) -> str:
    """A timed-out run's output arrives as bytes even in text mode."""
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_once(peer: ModuleType, python: str, workload: Workload, server: ModelServer, corpus: Path,
             work: Path, repeat: int) -> dict[str, Any]:  # fmt: skip
    """One fresh driver process answering one workload; its figures, or why it failed."""
    run_dir = work / "runs" / f"{peer.NAME}-{workload.name}-{repeat}"
    run_dir.mkdir(parents=True)
    task = Task(kind=workload.kind, question=workload.question, corpus=str(corpus), base_url=server.url,
                api_key="bench-key", model=MODEL, max_iterations=workload.max_iterations, work_dir=str(run_dir),
                cache_dir=str(work / "cache" / peer.NAME))  # fmt: skip
    cell = workload.cell(peer)
    server.set_script(lambda _: peer.reply(cell))
    server.set_latency(workload.latency)
    mark = len(server.calls)
    record: dict[str, Any] = {"peer": peer.NAME, "workload": workload.name, "repeat": repeat}
    with proctree.sampling() as tree:
        started = time.monotonic()
        try:
            done = subprocess.run([python, "-m", f"bench.peer_{peer.NAME}"], input=json.dumps(task), cwd=run_dir,
                                  env=driver_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)  # fmt: skip
            stdout, stderr, code = done.stdout, done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            stdout, stderr, code = _text(exc.stdout), _text(exc.stderr), None
        record["wall_s"] = time.monotonic() - started
    record.update(peak_rss_mb=tree.peak_mb, processes=tree.processes, at_peak=tree.at_peak,
                  leftovers=len(proctree.end_leftovers()))  # fmt: skip
    (run_dir / "driver.log").write_text(stderr)
    calls = server.calls[mark:]
    try:
        result = parse_result(stdout)
        if result["answer"].strip() != workload.expected:
            raise ValueError(f"answered {result['answer'][:200]!r}, expected {workload.expected!r}")
        record.update(measure(workload, calls, result["started"], result["ended"]), ok=True)
    except (ValueError, KeyError, IndexError) as exc:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        record.update(ok=False, error=f"exit {code}: {exc}; {tail}"[:600], calls=len(calls))
        console.log(f"[red]{peer.NAME} {workload.name} #{repeat} failed[/red]: {record['error']}")
    return record


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    dirty = "-dirty" if _git("status", "--porcelain", "--untracked-files=no") else ""
    return {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(int(memory) / 1e6, 1),
            "python": platform.python_version(), "commit": _git("rev-parse", "--short", "HEAD") + dirty,
            "load_start": os.getloadavg()}  # fmt: skip


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    chosen = [w for w in workloads(args.quick, args.sizes) if not args.tasks or w.name in args.tasks]
    if not chosen:
        raise SystemExit(f"no workload matches --tasks {','.join(args.tasks)}")
    peers = [PEERS[name] for name in args.only]
    notes = [peer.NOTE for peer in peers if hasattr(peer, "NOTE")]
    meta = machine() | {"quick": args.quick, "repeat": args.repeat, "peers": {}, "notes": notes}
    venvs = (args.venvs or work / "venvs").resolve()  # the drivers run in folders of their own
    pythons = {}
    for peer in peers:
        pythons[peer.NAME], meta["peers"][peer.NAME] = install(peer, venvs)
    corpora = write_corpora(chosen, work / "corpora")
    proctree.become_subreaper()
    runs = []
    with ModelServer() as server:
        for repeat in range(args.repeat):
            for workload in chosen:
                for peer in peers:
                    console.log(f"run {repeat + 1}/{args.repeat}: {peer.NAME} {workload.name}")
                    runs.append(run_once(peer, pythons[peer.NAME], workload, server, corpora[workload.corpus], work, repeat))
    meta["load_end"] = os.getloadavg()
    return {"meta": meta, "workloads": [w.name for w in chosen], "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run of 5 iterations, fan-out 8, the first size, 6 turns")
    parser.add_argument("--only", type=lambda s: s.split(","), default=list(PEERS), help="peers, comma-separated")
    parser.add_argument("--tasks", type=lambda s: s.split(","), default=[], help="workload names, e.g. needle-1mb")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100], help="needle MB")
    parser.add_argument("--repeat", type=int, help="runs per figure; the table shows medians (default 3, 1 with --quick)")
    parser.add_argument("--venvs", type=Path, help="keep the peers' virtualenvs here and reuse them")
    parser.add_argument("--json-out", type=Path, help="write every run and the machine facts here")
    parser.add_argument("--report", type=Path, help="print the table of a saved --json-out file; runs nothing")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for docs/benchmarks.md)")
    args = parser.parse_args()
    unknown = set(args.only) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {sorted(PEERS)}")
    if args.report:
        results = json.loads(args.report.read_text())
    else:
        args.repeat = args.repeat or (1 if args.quick else 3)
        with tempfile.TemporaryDirectory(prefix="rlm-bench-peers-") as tmp:
            results = bench(args, Path(tmp))
        if args.json_out:
            args.json_out.write_text(json.dumps(results, indent=2))
    if args.markdown:
        print(markdown(results))
    else:
        render(Console(width=None if Console().is_terminal else 160), results)
    if any(not run["ok"] for run in results["runs"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
