"""What the web UI costs: the size of its build, serving its files through the function app,
and one trace poll of the live view for recursion trees of growing width.

Run: `python -m bench.ui [--rounds N]` after `make setup` (which builds ui/dist).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from rlm_activities.web_ui import DIST
from shared.models import CellResult, PendingRequest, QueryResult, TokenUsage
from shared.trace import InstanceMeta, StepRecord, TraceStore

FAN_OUTS = (1, 8, 32, 128)
PROMPT = "iteration transcript " * 200  # ~4 KB, what a generate step's prompt holds early on


def write_tree(traces: TraceStore, root: str, width: int) -> None:
    """A root whose one cell fanned out to `width` sub-queries, each done in one iteration."""
    t0 = datetime.now(UTC)
    usage = TokenUsage(model_calls=1, prompt_tokens=900, completion_tokens=60)

    def meta(iid: str, parent: str | None, depth: int) -> InstanceMeta:
        return InstanceMeta(instance_id=iid, root_id=root, parent_id=parent, depth=depth, question=f"question of {iid}",
                            corpus_id="0" * 64, context_chars=50_000, started_at=t0)  # fmt: skip

    def steps(iid: str, pending: list[PendingRequest]) -> list[StepRecord]:
        at = t0
        code = "parts = context.split('\\n\\n## ')\nprint(len(parts))\nFinal = 'x'"
        records = [StepRecord(instance_id=iid, step=1, iteration=1, kind="generate", started_at=at, ended_at=at + timedelta(seconds=1),
                              model="m", prompt=PROMPT, reply=f"```repl\n{code}\n```", blocks=[code], usage=usage)]  # fmt: skip
        status = "suspended" if pending else "done"
        cell = CellResult(cell_id=f"{iid}-1", status=status, stdout="42\n" * 20, pending=pending)
        records.append(StepRecord(instance_id=iid, step=2, iteration=1, kind="execute", started_at=at, cell=cell))
        return records

    def result(iid: str) -> QueryResult:
        return QueryResult(answer="answer " * 20, iterations=1, instance_id=iid, trace=f"traces/{root}/", usage={"0": usage})

    pending = [PendingRequest(id=f"{root}-1.{k}", kind="rlm", question=f"part {k}") for k in range(width)]
    traces.write_meta(root, meta(root, None, 0))
    for record in steps(root, pending):
        traces.write_step(root, record)
    traces.write_result(root, result(root))
    for k in range(width):
        child = f"{root}-1-{k}"
        traces.write_meta(root, meta(child, root, 1))
        for record in steps(child, []):
            traces.write_step(root, record)
        traces.write_result(root, result(child))


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f}"


async def measure(rounds: int, console: Console) -> None:
    from devhost import EmbeddedHost
    from function_app import app
    from rlm_activities import services

    with tempfile.TemporaryDirectory() as tmp:
        os.environ |= {
            "RLM_DATA_DIR": str(Path(tmp) / "data"),
            "MODEL_PROVIDER": "openai",
            "MODEL_BASE_URL": "http://127.0.0.1:9",
        }
        services.reset()
        for width in FAN_OUTS:
            write_tree(services.traces(), f"bench-ui-{width}", width)
        async with EmbeddedHost(app, state_dir=Path(tmp) / "state") as host:
            ready = asyncio.Event()
            server = asyncio.create_task(host.serve(port=0, ready=ready))
            await asyncio.wait_for(ready.wait(), 30)
            try:
                async with httpx.AsyncClient(base_url=host.public_url, timeout=60) as client:
                    files = Table("file (through the function app)", "bytes sent", "median ms")
                    script = next(p for p in (DIST / "assets").iterdir() if p.suffix == ".js")
                    for label, path, headers in (
                        ("index.html", "/api/ui/trace/some-query", {}),
                        (f"{script.name}, gzip", f"/api/ui/assets/{script.name}", {"accept-encoding": "gzip"}),
                        (f"{script.name}, plain", f"/api/ui/assets/{script.name}", {"accept-encoding": "identity"}),
                    ):
                        samples, size = [], 0
                        for _ in range(rounds):
                            started = time.perf_counter()
                            response = await client.get(path, headers=headers)
                            samples.append(time.perf_counter() - started)
                            size = int(response.headers.get("content-length") or len(response.content))
                        files.add_row(label, f"{size:,}", median_ms(samples))
                    console.print(files)

                    polls = Table("sub-queries in the tree", "trace JSON bytes", "median ms per trace poll")
                    for width in FAN_OUTS:
                        samples, size = [], 0
                        for _ in range(rounds):
                            started = time.perf_counter()
                            response = await client.get(f"/api/queries/bench-ui-{width}/trace")
                            samples.append(time.perf_counter() - started)
                            size = len(response.content)
                        polls.add_row(str(width), f"{size:,}", median_ms(samples))
                    console.print(polls)
            finally:
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)
        services.reset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    console = Console()
    if not (DIST / "index.html").is_file():
        raise SystemExit("the web UI is not built: run `make setup`")
    build = Table("built file", "bytes", "gzip bytes")
    for path in sorted(p for p in DIST.rglob("*") if p.is_file()):
        data = path.read_bytes()
        build.add_row(str(path.relative_to(DIST)), f"{len(data):,}", f"{len(gzip.compress(data, 6)):,}")
    console.print(build)
    asyncio.run(measure(args.rounds, console))


if __name__ == "__main__":
    main()
