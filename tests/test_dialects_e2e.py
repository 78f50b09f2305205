"""Replies in every dialect real models write, through the real loop: embedded host -> real
orchestrator and activities -> real Copilot CLI -> scripted model -> local sandbox.

Each case is one query whose replies are written in one dialect; the code in them finds the
needle (or counts) in the corpus, so a right answer proves the reply was understood and run.
All cases run at once in one host, then each is checked on its own."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rlm_activities import services
from shared.config import get_settings
from shared.models import QueryResult
from shared.protocol import PROSE_FINAL_NOTE
from shared.trace import TraceStore
from tests.conftest import MODEL_VARIABLES
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import filler_corpus, is_leaf, iteration_of, question_of, repl, transcript_of

pytestmark = pytest.mark.timeout(300)

NEEDLE = "ZEBRA-4471"
CORPUS = filler_corpus(20_000, needle=NEEDLE)
FIND = 'import re\nfound = re.search(r"secret code is (\\S+)\\.", context).group(1)'
SECTION = "\n\n## "
PARTS = CORPUS.split(SECTION)[:3]


def seen(request: ScriptedRequest) -> str:
    """Everything the model was told in this request beyond the fixed system prompt."""
    return transcript_of(request)


def after(pattern: str, request: ScriptedRequest) -> str:
    match = re.search(pattern, seen(request))
    return match.group(1) if match else "<not shown to the model>"


@dataclass(frozen=True)
class Case:
    """One dialect: the root's reply at each iteration, and the answer that must come out."""

    name: str
    reply: Callable[[ScriptedRequest, int], str]
    answer: str
    iterations: int = 1


def failing_block(request: ScriptedRequest, iteration: int) -> str:
    if iteration == 1:
        return (
            "Three steps.\n```repl\nprint('first block')\n```\n```repl\nprint(undefined_name)\n```\n"
            f"```repl\n{FIND}\nprint('found', found)\n```"
        )
    return repl('FINAL_VAR("found")')


def show_vars(request: ScriptedRequest, iteration: int) -> str:
    if iteration == 1:
        return repl(f'{FIND}\nsv_sections = context.split("\\n\\n## ")\nSHOW_VARS()')
    return repl(f"FINAL({after(r'  (found: .*)', request) + '; ' + after(r'  (sv_sections: .*)', request)!r})")


def invented_output(request: ScriptedRequest, iteration: int) -> str:
    if iteration == 1:
        return "```repl\nprint(len(context))\n```\nIt prints:\n```text\n999\n```"
    printed = after(r"real output of your code follows.\n(\d+)", request)
    return repl(f"FINAL({printed!r})")


def prose_final_beside_code(request: ScriptedRequest, iteration: int) -> str:
    if iteration == 1:
        return repl(f"{FIND}\nprint(found)") + "\nFINAL(a guess)"
    return repl('FINAL_VAR("found")' if PROSE_FINAL_NOTE in seen(request) else "FINAL('the note was missing')")


def fenced_prose_final(request: ScriptedRequest, iteration: int) -> str:
    if iteration == 1:
        return repl(f"{FIND}\nprint('code:', found)")
    code = after(r"code: (\S+)", request)
    return f"```repl\nFINAL(The code is {code})\n```"


CASES = [
    Case(
        "reference-names",
        lambda r, i: repl(
            'parts = context.split("\\n\\n## ")[:3]\n'
            'words = rlm_query_batched([("[reference-names] count words", p) for p in parts])\n'
            'echo = llm_query_batched(["[reference-names] say A", "[reference-names] say B"])\n'
            'FINAL(",".join(words + echo))'
        ),
        ",".join([str(len(p.split())) for p in PARTS] + ["A", "B"]),
    ),
    Case(
        "model",
        lambda r, i: repl(
            'a = rlm_query("[model] allowed child", context[:300], model="big-model")\n'
            'b = rlm_query("[model] unknown child", context[:300], model="no-such-model")\n'
            'c = llm_query("[model] allowed leaf", model="big-model")\n'
            'd = llm_query("[model] unknown leaf", model="no-such-model")\n'
            'FINAL(" ".join([a, b, c, d]))'
        ),
        "big-model sub-model big-model sub-model",  # each answer is the model the server was asked for
    ),
    Case("show-vars", show_vars, f"found: str, {len(NEEDLE)} chars; sv_sections: list, {len(CORPUS.split(SECTION))} items", 2),
    Case("context_0", lambda r, i: repl('import re\nFINAL(re.search(r"secret code is (\\S+)\\.", context_0).group(1))'), NEEDLE),
    Case(
        "answer-dict",
        lambda r, i: (
            f'Store it.\n```repl\n{FIND}\nanswer["content"] = found\n```\nThen submit.\n```repl\nanswer["ready"] = True\n```'
        ),
        NEEDLE,
    ),
    Case("final-in-code", lambda r, i: repl(f"{FIND}\nFINAL(found)"), NEEDLE),
    Case("final-var-by-name", lambda r, i: repl(f'{FIND}\nFINAL_VAR("found")'), NEEDLE),
    Case(
        "final-var-by-value",
        lambda r, i: repl(f'{FIND}\nFINAL_VAR(f"{{found}} at {{context.index(found)}}")'),
        f"{NEEDLE} at {CORPUS.index(NEEDLE)}",
    ),
    Case("final-var-in-prose", lambda r, i: repl(FIND) + "\nThat settles it: FINAL_VAR(found)", NEEDLE),
    Case("failing-block", failing_block, NEEDLE, 2),
    Case(
        "indented",
        lambda r, i: (
            "Plan:\n1. Search the corpus:\n    ```repl\n    import re\n"
            '    m = re.search(r"secret code is (\\S+)\\.", context)\n    if m:\n        FINAL(m.group(1))\n    ```\n'
        ),
        NEEDLE,
    ),
    Case("invented-output", invented_output, str(len(CORPUS)), 2),
    Case(
        "template-tokens",
        lambda r, i: (
            f"<|im_start|>assistant\nFound it.\n```repl\n{FIND}<|eot_id|>\nFINAL(found)\n```<|im_end|>\n"
            "<|im_start|>user\nREPL output: done<|im_end|>\n<|im_start|>assistant\n```repl\nFINAL('invented')\n```<|im_end|>"
        ),
        NEEDLE,
    ),
    Case("prose-final-beside-code", prose_final_beside_code, NEEDLE, 2),
    Case("fenced-prose-final", fenced_prose_final, f"The code is {NEEDLE}", 2),
]
BY_NAME = {case.name: case for case in CASES}


def sub_reply(request: ScriptedRequest, name: str) -> str:
    """Sub-queries answer with what they can check: their own corpus, or the model they were asked as."""
    if name == "reference-names":
        return request.prompt[-1] if is_leaf(request) else repl("FINAL(str(len(context.split())))")
    if name == "model":
        return request.model if is_leaf(request) else repl(f"FINAL({request.model!r})")
    raise AssertionError(f"no sub-query expected in case {name}")


def script(request: ScriptedRequest) -> str:
    asked = request.prompt if is_leaf(request) else question_of(request)
    name = asked[1 : asked.index("]")]
    if asked == f"[{name}] {name}":
        return BY_NAME[name].reply(request, iteration_of(request))
    return sub_reply(request, name)


@dataclass
class Run:
    server: ModelServer
    results: dict[str, Any]
    traces: TraceStore


def instance_id(name: str) -> str:
    return f"dialect-{name.replace('_', '-')}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Every case as its own query, all at once in one embedded host."""
    from devhost import EmbeddedHost
    from function_app import app
    from rlm_activities.orchestrator import ORCHESTRATOR
    from shared.llm import close_models
    from shared.models import QueryRequest
    from shared.starting import root_task

    tmp = tmp_path_factory.mktemp("dialects")
    with ModelServer(script) as server, pytest.MonkeyPatch.context() as env:
        for variable in MODEL_VARIABLES:
            env.delenv(variable, raising=False)
        settings = {
            "MODEL_PROVIDER": "openai", "MODEL_BASE_URL": server.url, "MODEL_API_KEY": "test-key",
            "COPILOT_HOME_DIR": str(tmp / "copilot-home"), "RLM_DATA_DIR": str(tmp / "data"),
            "ROOT_MODEL": "root-model", "SUB_MODEL": "sub-model", "RLM_ALLOWED_MODELS": "big-model, other-model",
        }  # fmt: skip
        for variable, value in settings.items():
            env.setenv(variable, value)
        services.reset()

        async def main() -> dict[str, Any]:
            try:
                async with EmbeddedHost(app, state_dir=tmp / "state") as host:
                    for case in CASES:
                        request = QueryRequest(
                            question=f"[{case.name}] {case.name}", corpus=CORPUS, options={"max_iterations": 3}
                        )
                        task = await asyncio.to_thread(
                            root_task, request, instance_id(case.name), services.settings(), services.store()
                        )
                        await host.start_new(ORCHESTRATOR, input=task.model_dump(), instance_id=instance_id(case.name))
                    return {case.name: await host.wait_for_completion(instance_id(case.name)) for case in CASES}
            finally:
                await close_models()

        try:
            yield Run(server=server, results=asyncio.run(main()), traces=TraceStore(services.store()))
        finally:
            services.reset()
            get_settings.cache_clear()


def calls_of(run: Run, name: str) -> list[ScriptedRequest]:
    return [c.request for c in run.server.calls if not is_leaf(c.request) and question_of(c.request) == f"[{name}] {name}"]


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_the_answer_comes_out_right(run: Run, name: str) -> None:
    status = run.results[name]
    assert str(status.runtime_status) == "Completed", status.output
    result = QueryResult.model_validate(status.output)
    case = BY_NAME[name]
    assert (result.answer, result.iterations, result.forced) == (case.answer, case.iterations, False)
    assert not run.server.script_failures


def test_each_block_output_is_shown_under_its_block(run: Run) -> None:
    second = calls_of(run, "failing-block")[1]
    view = seen(second)
    one = view.index("[block 1 of 3]\nfirst block")
    two = view.index("[block 2 of 3]")
    three = view.index(f"[block 3 of 3]\nfound {NEEDLE}")
    assert one < two < three and "NameError: name 'undefined_name' is not defined" in view[two:three]


def test_the_model_is_told_invented_output_did_not_run(run: Run) -> None:
    view = seen(calls_of(run, "invented-output")[1])
    assert (
        f"Only ```repl blocks run; your ```text block was not run. The real output of your code follows.\n{len(CORPUS)}" in view
    )


def test_a_written_final_in_a_fence_ends_without_running(run: Run) -> None:
    root = instance_id("fenced-prose-final")
    kinds = [(s.iteration, s.kind) for s in run.traces.steps(root, root)]
    assert kinds == [(1, "generate"), (1, "execute"), (2, "generate")]


def test_show_vars_leaves_out_modules(run: Run) -> None:
    view = seen(calls_of(run, "show-vars")[1])
    assert "Variables:\n  found: str" in view and "  re:" not in view


def test_model_keyword_uses_allowed_names_and_falls_back_visibly(run: Run) -> None:
    root = instance_id("model")
    assert {c.model for c in calls_of(run, "model")} == {"root-model"}
    asked = {c.request.prompt if is_leaf(c.request) else question_of(c.request): c.request.model for c in run.server.calls}
    assert asked["[model] allowed child"] == "big-model" and asked["[model] allowed leaf"] == "big-model"
    assert asked["[model] unknown child"] == "sub-model" and asked["[model] unknown leaf"] == "sub-model"
    children = {m.question: (m.requested_model, m.model) for m in run.traces.metas(root) if m.parent_id == root}
    assert children == {
        "[model] allowed child": ("big-model", "big-model"),
        "[model] unknown child": ("no-such-model", "sub-model"),
    }
    leaves = {s.prompt: (s.requested_model, s.model) for s in run.traces.steps(root, root) if s.kind == "leaf"}
    assert leaves == {"[model] allowed leaf": ("big-model", "big-model"), "[model] unknown leaf": ("no-such-model", "sub-model")}
