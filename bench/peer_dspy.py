"""`dspy.RLM` as a bench peer.

The bench imports this module for the dialect the scripted model writes to it; the peer's own
virtualenv runs it (`python -m bench.peer_dspy`) as the driver. dspy's default interpreter is
Deno + Pyodide, which downloads its runtime from the internet on first use, so the driver
passes `interpreter_factory=dspy.LocalInterpreter` (a persistent local Python subprocess, not a
sandbox) and says so in the bench output. The LM cache is off, so every call reaches the server.
dspy has no batched recursive call: recursion is a `dspy.RLM` sub-agent built in the REPL, and
the fan-out runs those from a thread pool, as generated code would.
"""

from __future__ import annotations

import os

from bench.peer_protocol import Task, read_corpus, serve_task

NAME = "dspy"
DISTRIBUTION = "dspy"
PACKAGE = f"{DISTRIBUTION}>=3.4,<4"
NOTE = "dspy runs with dspy.LocalInterpreter: its default Deno/Pyodide sandbox needs the internet"
SIGNATURE = "context, question -> answer"


def finish(expression: str) -> str:
    return f"SUBMIT(answer={expression})"


def fan_out(target: str, contexts: str, question: str) -> str:
    return (
        "from concurrent.futures import ThreadPoolExecutor\n"
        f"with ThreadPoolExecutor(len({contexts})) as pool:\n"
        f'    {target} = list(pool.map(lambda c: dspy.RLM("{SIGNATURE}")(context=c, question={question!r}).answer, {contexts}))'
    )


def reply(code: str) -> str:
    """dspy's ChatAdapter reads `[[ ## field ## ]]` sections; `code` holds one fenced block."""
    return f"[[ ## reasoning ## ]]\nWorking in the REPL.\n\n[[ ## code ## ]]\n```python\n{code}\n```\n\n[[ ## completed ## ]]"


def answer(task: Task) -> str:
    os.environ.setdefault("DSPY_CACHEDIR", task["cache_dir"])
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy

    lm = dspy.LM(f"openai/{task['model']}", api_base=task["base_url"], api_key=task["api_key"], cache=False)
    dspy.configure(lm=lm)
    rlm = dspy.RLM(SIGNATURE, max_iters=task["max_iterations"], interpreter_factory=dspy.LocalInterpreter)
    return str(rlm(context=read_corpus(task), question=task["question"]).answer)


if __name__ == "__main__":
    serve_task(answer)
