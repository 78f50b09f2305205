"""`rlms`, the reference RLM implementation (alexzhang13/rlm), as a bench peer.

The bench imports this module for the dialect the scripted model writes to it; the peer's own
virtualenv runs it (`python -m bench.peer_rlms`) as the driver, through the public `rlm.RLM`
API with its default `local` REPL (in-process `exec`) and default settings. `max_depth=2` makes
`rlm_query` children full RLMs with a REPL, as `--max-depth 1` does for this project.
"""

from __future__ import annotations

from bench.peer_protocol import Task, read_corpus, serve_task

NAME = "rlms"
DISTRIBUTION = "rlms"
PACKAGE = f"{DISTRIBUTION}>=0.1.3,<0.2"


def finish(expression: str) -> str:
    return f'answer["content"] = {expression}\nanswer["ready"] = True'


def fan_out(target: str, contexts: str, question: str) -> str:
    return f"{target} = rlm_query_batched({contexts})"


def reply(code: str) -> str:
    return f"Working in the REPL.\n```repl\n{code}\n```"


def answer(task: Task) -> str:
    from rlm import RLM

    backend = {"model_name": task["model"], "base_url": task["base_url"], "api_key": task["api_key"]}
    rlm = RLM(backend="openai", backend_kwargs=backend, environment="local", max_depth=2,
              max_iterations=task["max_iterations"])  # fmt: skip
    return str(rlm.completion(read_corpus(task), root_prompt=task["question"]).response)


if __name__ == "__main__":
    serve_task(answer)
