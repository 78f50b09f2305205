"""`python -m devhost`: serve a function app like `func start`, resume unfinished work, or
use the RLM app directly (ask a question over a file or folder, run a batch, show a
trace), with the app hosted in-process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path
from types import FrameType

from rich.console import Console

from devhost.config import HostConfigError
from devhost.errors import StartError, UsageError
from devhost.settings import SettingsError, load_local_settings, local_http_port

DEFAULT_STATE_DIR = Path(".rlm-state")
DEFAULT_APP = "function_app"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ask = commands.add_parser("ask", help="answer a question over a corpus, with live progress")
    ask.add_argument("--corpus", type=Path, help="a text file, a folder of .txt/.md files, or a .jsonl of {id?, title, content}")
    ask.add_argument("--question", help="the question to answer")
    ask.add_argument("--instance-id", help="resume (or read the result of) this query; new queries get a fresh id")
    ask.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where histories, corpora and traces live")
    ask.add_argument("--max-depth", type=int, help="recursion bound for rlm_query (default RLM_MAX_DEPTH)")
    ask.add_argument("--max-iterations", type=int, help="iterations of the root loop (default RLM_MAX_ITERATIONS)")
    ask.add_argument("--max-tokens", type=int, help="token budget of the whole recursion tree (default RLM_MAX_TOKENS)")
    ask.add_argument("--max-cost", type=float, help="cost budget of the tree, priced by RLM_PRICES (default RLM_MAX_COST)")
    ask.add_argument("--deadline", type=float, metavar="SECONDS", help="answer within this long (default RLM_DEADLINE_SECONDS)")
    ask.add_argument("--json", action="store_true", help="print the result object as JSON")

    batch = commands.add_parser("batch", help="answer a file of questions over one corpus; prints the summary")
    batch.add_argument("--file", type=Path, help="a .jsonl of {id?, question, expected?, kind?} lines, or a .json list of them or batch object")
    batch.add_argument("--corpus", type=Path, help="a text file, a folder of .txt/.md files, or a .jsonl of {id?, title, content}")
    batch.add_argument("--batch-id", help="resume (or read the summary of) this batch; new batches get a fresh id")
    batch.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where histories, corpora and results live")
    batch.add_argument("--concurrency", type=int, help="queries running at once (default RLM_BATCH_CONCURRENCY)")
    batch.add_argument("--strategies", help="comma-separated, from rlm,keyword,vector,hybrid,agentic (default: rlm)")
    batch.add_argument("--judge", action=argparse.BooleanOptionalAction, help="LLM judge scores (default: on with several strategies)")
    batch.add_argument("--json", action="store_true", help="print the summary as JSON")

    trace = commands.add_parser("trace", help="show a query's recursion tree with every step")
    trace.add_argument("instance_id", help="the query's instance id (printed by ask)")
    trace.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    trace.add_argument("--json", action="store_true", help="print the whole trace tree as JSON")

    from devhost.compare_cli import add_compare_parser

    add_compare_parser(commands, DEFAULT_STATE_DIR)

    for name, text in (("serve", "host the function app in this folder like `func start` (HTTP triggers, "
                                 "queues, Durable APIs); resumes all unfinished work"),
                       ("resume", "resume every unfinished instance and queued message in the state dir, "
                                  "wait for them to finish, then exit")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
        command.add_argument("--app", default=DEFAULT_APP, help="the app: a module holding one function app, or module:attribute (default function_app)")
        command.add_argument("--workers", type=int, help="worker processes (default FUNCTIONS_WORKER_PROCESS_COUNT or 1)")
        if name == "serve":
            command.add_argument("--host", default="127.0.0.1")
            command.add_argument("--port", type=int, help="default: Host.LocalHttpPort of local.settings.json, else 7071")
            command.add_argument("--no-function-keys", action="store_true",
                                 help="let function-level triggers answer without a key (the Durable APIs still need theirs)")
    return parser


def prepare_environment(state_dir: Path) -> None:
    """Like `func start`: local.settings.json into the environment, data beside the state."""
    load_local_settings(Path("local.settings.json"))
    os.environ.setdefault("RLM_DATA_DIR", str(state_dir / "data"))


def _host(args: argparse.Namespace, **options: object):
    from devhost import EmbeddedHost, HostConfig

    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    config = HostConfig.load(Path.cwd(), process_count=args.workers)
    try:
        return EmbeddedHost(args.app, state_dir=args.state_dir, config=config, **options)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot load the app '{args.app}' from {Path.cwd()}: {exc}") from None


async def serve(args: argparse.Namespace, console: Console) -> int:
    port = args.port or local_http_port() or 7071
    host = _host(args, enforce_keys=not args.no_function_keys)
    async with host:
        ready = asyncio.Event()
        server = asyncio.create_task(host.serve(host=args.host, port=port, ready=ready))
        done, _ = await asyncio.wait({server, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if server in done:
            server.result()
        _print_banner(host, args)
        await server
    return 0


def _print_banner(host, args: argparse.Namespace) -> None:
    """What `func start` prints, plus the keys: plain lines, so scripts can read them."""
    workers = host.config.process_count
    print(f"Serving {args.app} (task hub {host.config.hub_name}, {workers} worker process{'es' if workers > 1 else ''}) "
          f"on {host.public_url}  (Ctrl+C to stop)")
    prefix = f"/{host.config.route_prefix}" if host.config.route_prefix else ""
    for function in sorted(host.index.http, key=lambda f: f.route):
        methods = ",".join(function.methods) or "*"
        print(f"  {function.name}: [{methods}] {host.public_url}{prefix}/{function.route}  ({function.auth_level})")
    print(f"Keys (in {args.state_dir / 'keys.json'}; send as ?code= or the x-functions-key header):")
    if args.no_function_keys:
        print("  function key: not needed (--no-function-keys)")
    else:
        print(f"  function key (default): {host.keys.function_key}")
    print(f"  Durable system key (durabletask_extension): {host.keys.system_key}", flush=True)


async def resume(args: argparse.Namespace, console: Console) -> int:
    async with _host(args) as host:
        pending = host.unfinished()
        console.print(f"resuming {len(pending)} unfinished instance(s) in {args.state_dir}", highlight=False)
        for instance_id in pending:
            status = await host.wait_for_completion(instance_id)
            console.print(f"  {instance_id}: {status.runtime_status}", highlight=False, markup=False)
        while any(host.queue_messages(queue) for queue in host.index.queues):
            await asyncio.sleep(0.2)
    return 0


async def _quiet_on_interrupt(command: Awaitable[int]) -> int:
    """On Ctrl+C the whole process group stops (the Copilot CLI, sandboxes): what fails
    while shutting down is the interruption itself, so it is not logged as errors."""
    forward = signal.getsignal(signal.SIGINT)

    def interrupted(signum: int, frame: FrameType | None) -> None:
        logging.disable(logging.CRITICAL)
        if callable(forward):
            forward(signum, frame)

    signal.signal(signal.SIGINT, interrupted)
    return await command


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        prepare_environment(args.state_dir)
        from devhost import compare_cli, rlm_cli

        commands = {"ask": rlm_cli.ask, "batch": rlm_cli.batch, "trace": rlm_cli.trace, "compare": compare_cli.compare,
                    "serve": serve, "resume": resume}
        return asyncio.run(_quiet_on_interrupt(commands[args.command](args, console)))
    except (UsageError, SettingsError, HostConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = getattr(args, "resume_hint", None)
        print(f"\nstopped; {hint}" if hint else "\nstopped", file=sys.stderr)
        return 130
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
