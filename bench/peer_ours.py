"""This project as a bench peer: the dialect its scripted model writes, and a driver that runs
`python -m devhost ask --json` in-process, as a user would on one machine: the function app in
the embedded Durable host, the real Copilot CLI, the local sandbox, the filesystem store.

`--max-depth 1` makes `rlm_query` children full RLMs (sub-orchestrations with a REPL) whose own
sub-calls would be plain model calls, as `max_depth=2` does for `rlms`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

from bench.peer_protocol import Task, serve_task

NAME = "ours"


def finish(expression: str) -> str:
    return f"Final = {expression}"


def fan_out(target: str, contexts: str, question: str) -> str:
    return f"{target} = rlm_query_batch([({question!r}, c) for c in {contexts}])"


def reply(code: str) -> str:
    return f"Working in the REPL.\n```repl\n{code}\n```"


def answer(task: Task) -> str:
    """The CLI reads the corpus file itself, as `ask --corpus` does."""
    os.environ.update({
        "MODEL_PROVIDER": "openai", "MODEL_BASE_URL": task["base_url"], "MODEL_API_KEY": task["api_key"],
        "ROOT_MODEL": task["model"], "SUB_MODEL": task["model"],
        "COPILOT_HOME_DIR": os.path.join(task["cache_dir"], "copilot-home"),
    })  # fmt: skip
    from devhost.cli import main

    argv = ["ask", "--corpus", task["corpus"], "--question", task["question"], "--json", "--max-depth", "1",
            "--max-iterations", str(task["max_iterations"]), "--state-dir", os.path.join(task["work_dir"], "state")]  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"devhost ask exited {code}: {printed.getvalue()[-2000:]}")
    return str(json.loads(printed.getvalue())["answer"])


if __name__ == "__main__":
    serve_task(answer)
