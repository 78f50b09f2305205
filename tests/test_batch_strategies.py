"""A batch run by every strategy with the judge, through `python -m devhost batch
--strategies ...`: per-strategy exact match, F1, judge scores and pairwise preferences
against values worked out by hand, the judge on its own model (`JUDGE_MODEL`), and
`python -m devhost compare` on the terminal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.grading import JUDGE_SYSTEM_PROMPT
from shared.prompts import ROOT_SYSTEM_PROMPT
from tests.support.model_server import ModelServer, RecordedCall, ScriptedError, ScriptedRequest, count_tokens
from tests.support.retrieval import CODE, is_answer, is_rewrite, needle_documents
from tests.support.rlm import question_of, repl
from tests.test_cli import cli_env

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)
STRATEGIES = ["rlm", "keyword", "vector", "hybrid", "agentic"]
QUESTIONS = [
    {"id": "code", "kind": "needle", "question": "What is the vault's secret code?", "expected": "4417"},
    {"id": "count", "kind": "aggregation", "question": "How many field reports are there?", "expected": "39"},
]
JUDGE_MODEL = "judge-large"  # not ROOT_MODEL: every judge call must name it
RLM_CODE = {
    # the needle's section, read by code
    QUESTIONS[0][
        "question"
    ]: "import re\nm = re.search(r'secret code is (\\d+)', context)\nused_sections = [\"Harbor master's log\"]\nFinal = 'The secret code is ' + m.group(1) + '.'",
    # an aggregation over every document: code counts them
    QUESTIONS[1][
        "question"
    ]: "titles = [l[3:] for l in context.splitlines() if l.startswith('## Field report')]\nused_sections = titles\nFinal = f'{len(titles)} field reports.'",
}


def prefer(prompt: str) -> str:
    """The answer stating the reference answer wins; both or neither is a tie."""
    reference = re.search(r"A reference answer is: (.*)\n", prompt).group(1)
    a, b = re.search(r"Answer A:\n(.*?)\n\nAnswer B:\n(.*?)\n\n", prompt, re.DOTALL).groups()
    says = [re.search(rf"\b{re.escape(reference)}\b", text) is not None for text in (a, b)]
    return {(True, False): "Winner: A", (False, True): "Winner: B"}.get((says[0], says[1]), "Winner: tie")


def script(request: ScriptedRequest) -> str:
    if request.system.strip() == JUDGE_SYSTEM_PROMPT.strip():
        if "Rubric: PREFERENCE" in request.prompt:
            return prefer(request.prompt)
        answer = re.search(r"Answer:\n(.*?)\n\n", request.prompt, re.DOTALL).group(1)
        if "Rubric: RELEVANCE" in request.prompt:
            return "Score: 5" if re.search(r"\d", answer) else "Score: 1"
        if "Rubric: GROUNDEDNESS" in request.prompt:
            return "Score: 4" if "4417" in answer and "4417" in request.prompt.split("Cited sections:")[1] else "Score: 2"
        return "Score: 3"
    if is_rewrite(request):
        return "ANSWER"
    if is_answer(request):
        found = CODE.search(request.prompt)
        return f"It is {found.group(1)}." if found else "Not stated."
    assert request.system.startswith(ROOT_SYSTEM_PROMPT)  # then the question and the turns so far
    return repl(RLM_CODE[question_of(request)])


# Chat and embedding calls priced per million tokens; the embedding model by its input alone.
PRICES = {
    "gpt-5-4-mini": {"input": 1.0, "output": 4.0},
    JUDGE_MODEL: {"input": 2.0, "output": 8.0},
    "text-embedding-3-small": {"input": 0.5},
}


def run_cli(tmp_path: Path, server: ModelServer, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "devhost", *args, "--state-dir", str(tmp_path / "state")]
    env = cli_env(tmp_path, server) | {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}  # tables unwrapped
    env["RLM_PRICES"] = json.dumps(PRICES)
    env["JUDGE_MODEL"] = JUDGE_MODEL
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)


def chat_cost(call: RecordedCall) -> float:
    assert call.usage is not None
    price = PRICES[call.request.model]
    return (call.usage["prompt_tokens"] * price["input"] + call.usage["completion_tokens"] * price["output"]) / 1_000_000


def judge_calls(server: ModelServer) -> list[RecordedCall]:
    """The judge's calls, each of which must name JUDGE_MODEL; every other call names ROOT_MODEL."""
    judged = [c for c in server.calls if c.request.system.strip() == JUDGE_SYSTEM_PROMPT.strip()]
    assert judged and {c.request.model for c in judged} == {JUDGE_MODEL}
    assert {c.request.model for c in server.calls if c not in judged} == {"gpt-5-4-mini"}
    return judged


def write_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "reports.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in needle_documents()), encoding="utf-8")
    return corpus


def test_batch_summary_scores_each_strategy_as_computed_by_hand(tmp_path: Path, model_server: ModelServer) -> None:
    model_server.set_script(script)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    corpus = write_corpus(tmp_path)
    done = run_cli(tmp_path, model_server, "batch", "--file", str(questions), "--corpus", str(corpus),
                   "--strategies", ",".join(STRATEGIES), "--batch-id", "five-ways", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    per = summary["strategies"]
    assert list(per) == STRATEGIES
    # RLM: "The secret code is 4417." -> EM yes, F1 2*(1/4)*1/(1/4+1) = 0.4 ("the" is dropped);
    #      "39 field reports." -> EM yes, F1 2*(1/3)/(1/3+1) = 0.5; mean 0.45.
    assert (per["rlm"]["accuracy"], per["rlm"]["f1"]) == (1.0, 0.45)
    # Baselines: "It is 4417." -> EM yes, F1 0.5; "Not stated." (no passage counts reports) -> 0.
    for name in STRATEGIES[1:]:
        assert (per[name]["accuracy"], per[name]["f1"]) == (0.5, 0.25), name
    # Judge: relevance 5 with a number in the answer, else 1; groundedness 4 when answer and
    # cited sections hold the code, else 2; coherence 3.
    assert per["rlm"]["judge"] == {"relevance": 5.0, "groundedness": 3.0, "coherence": 3.0}
    for name in STRATEGIES[1:]:
        assert per[name]["judge"] == {"relevance": 3.0, "groundedness": 3.0, "coherence": 3.0}, name
    # Preference, per question between every two answers (the one stating the expected answer
    # wins): on "code" all five do, 10 ties; on "count" only RLM does: it beats each baseline,
    # the baselines tie among themselves. RLM: 4 ties + 4 wins of 8, win rate (4 + 4/2)/8;
    # a baseline: 1 + 6 ties and 1 loss, (7/2)/8.
    assert per["rlm"]["preference"] == {"wins": 4, "ties": 4, "losses": 0, "win_rate": 0.75}
    for name in STRATEGIES[1:]:
        assert per[name]["preference"] == {"wins": 0, "ties": 7, "losses": 1, "win_rate": 0.4375}, name
    # Split by the questions' kind: the needle's F1 as above, the aggregation's.
    assert per["rlm"]["kinds"] == {
        "aggregation": {"count": 1, "accuracy": 1.0, "f1": 0.5},
        "needle": {"count": 1, "accuracy": 1.0, "f1": 0.4},
    }
    assert per["keyword"]["kinds"] == {
        "aggregation": {"count": 1, "accuracy": 0.0, "f1": 0.0},
        "needle": {"count": 1, "accuracy": 1.0, "f1": 0.5},
    }
    assert summary["kinds"]["aggregation"] == {"count": 5, "accuracy": 0.2, "f1": 0.1}
    assert per["rlm"]["usage"]["model_calls"] == 2 and per["keyword"]["usage"]["model_calls"] == 2
    # a rewrite, an answer and the question's embedding per question (the index was built before)
    assert per["agentic"]["usage"]["model_calls"] == 6 and per["vector"]["usage"]["model_calls"] == 4
    assert all(s["latency_seconds"]["max"] > 0 and s["answered"] == s["count"] == 2 for s in per.values())
    # overall: 6 of 10 right; F1 (0.4 + 0.5 + 4 * (0.5 + 0)) / 10
    assert (summary["count"], summary["accuracy"], summary["f1"]) == (10, 0.6, 0.29)
    judged = judge_calls(model_server)
    # three rubrics per answer; two votes (A/B, then swapped) per pair, 10 pairs per question
    assert len(judged) == 10 * 3 + 2 * 10 * 2
    rows = [json.loads(line) for line in (tmp_path / "state/data/results/five-ways.jsonl").read_text().splitlines()]
    assert [(r["id"], r["strategy"], r["kind"]) for r in rows[:5]] == [("code", s, "needle") for s in STRATEGIES]
    assert rows[1]["instance_id"] == "batch-five-ways-1-keyword" and rows[1]["judge"]["relevance"] == 5
    assert rows[0]["preference"] == dict.fromkeys(STRATEGIES[1:], "tie")
    assert rows[5]["preference"] == dict.fromkeys(STRATEGIES[1:], "win")
    assert rows[6]["preference"] == {"rlm": "loss", "vector": "tie", "hybrid": "tie", "agentic": "tie"}
    # Each strategy's cost is what its rows' calls cost; the question embeddings count for the
    # vector strategies (keyword makes the same two chat calls, and no more).
    for name in STRATEGIES:
        assert per[name]["cost"] == pytest.approx(sum(r["usage"]["cost"] for r in rows if r["strategy"] == name)), name
    assert summary["cost"] == pytest.approx(sum(s["cost"] for s in per.values()))
    assert summary["judge_usage"]["model_calls"] == 70
    assert summary["judge_usage"]["cost"] == pytest.approx(sum(map(chat_cost, judged)))
    # All of it, and the index build, is every call the server answered.
    embedded = sum(count_tokens(text) for call in model_server.embedding_calls for text in call.inputs) * 0.5 / 1_000_000
    chats = [c for c in model_server.calls if c.status == 200]
    spent = summary["cost"] + summary["judge_usage"]["cost"] + summary["index_usage"]["cost"]
    assert spent == pytest.approx(sum(map(chat_cost, chats)) + embedded)
    assert summary["index_usage"]["model_calls"] >= 1 and summary["index_usage"]["cost"] > 0

    table = run_cli(tmp_path, model_server, "batch", "--batch-id", "five-ways")  # reads the stored summary
    assert table.returncode == 0, table.stderr
    assert "Per strategy" in table.stdout and "agentic" in table.stdout and "F1 0.29" in table.stdout
    assert re.search(r"judge\s+70 calls \(\d+ tokens, cost [0-9.e-]+\)", table.stdout), table.stdout
    keyword_line = next(line for line in table.stdout.splitlines() if line.strip("│ ").startswith("keyword"))
    assert f"{per['keyword']['cost']:.3g}" in keyword_line and "0/7/1 (0.44)" in keyword_line
    rlm_line = next(line for line in table.stdout.splitlines() if line.strip("│ ").startswith("rlm "))
    assert "4/4/0 (0.75)" in rlm_line
    assert "By kind of question" in table.stdout
    needle_line = next(line for line in table.stdout.splitlines() if line.strip("│ ").startswith("needle (1)"))
    assert "1.00 / 0.40" in needle_line and "1.00 / 0.50" in needle_line


BROKEN = {"id": "broken", "question": "Which report did the storm destroy?", "expected": "7"}


def rlm_fails_on_broken(request: ScriptedRequest) -> str | ScriptedError:
    if request.system.startswith(ROOT_SYSTEM_PROMPT) and question_of(request) == BROKEN["question"]:
        return ScriptedError(400, "this question is scripted to fail")
    return script(request)


def test_a_failed_answer_is_left_out_of_the_preferences(tmp_path: Path, model_server: ModelServer) -> None:
    model_server.set_script(rlm_fails_on_broken)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in [QUESTIONS[0], BROKEN]), encoding="utf-8")
    done = run_cli(tmp_path, model_server, "batch", "--file", str(questions), "--corpus", str(write_corpus(tmp_path)),
                   "--strategies", "rlm,keyword,vector", "--batch-id", "one-broken", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    per = json.loads(done.stdout)["strategies"]
    # "code": three answers stating 4417, three ties; "broken": RLM failed, so only keyword
    # and vector ("Not stated." both) are compared: one more tie.
    assert per["rlm"]["failed"] == 1 and per["rlm"]["preference"] == {"wins": 0, "ties": 2, "losses": 0, "win_rate": 0.5}
    assert per["keyword"]["preference"] == per["vector"]["preference"] == {"wins": 0, "ties": 3, "losses": 0, "win_rate": 0.5}
    rows = [json.loads(line) for line in (tmp_path / "state/data/results/one-broken.jsonl").read_text().splitlines()]
    assert [(r["id"], r["strategy"], r["preference"]) for r in rows[3:]] == [
        ("broken", "rlm", {}), ("broken", "keyword", {"vector": "tie"}), ("broken", "vector", {"keyword": "tie"}),
    ]  # fmt: skip
    pairs = [c for c in judge_calls(model_server) if "Rubric: PREFERENCE" in c.request.prompt]
    assert len(pairs) == 2 * (3 + 1)


def test_cli_compare_prints_the_strategies_side_by_side(tmp_path: Path, model_server: ModelServer) -> None:
    model_server.set_script(script)
    corpus = write_corpus(tmp_path)
    done = run_cli(tmp_path, model_server, "compare", "--corpus", str(corpus), "--question", QUESTIONS[1]["question"],
                   "--expected", "39", "--strategies", "rlm,keyword", "--compare-id", "count-reports", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    rows = {r["strategy"]: r for r in result["strategies"]}
    assert rows["rlm"]["answer"] == "39 field reports." and rows["rlm"]["scores"]["exact_match"] is True
    assert rows["keyword"]["answer"] == "Not stated." and rows["keyword"]["scores"]["exact_match"] is False
    assert result["preference"] == [{"a": "rlm", "b": "keyword", "winner": "rlm"}]
    assert len(judge_calls(model_server)) == 2 * 3 + 2
    shown = run_cli(tmp_path, model_server, "compare", "--compare-id", "count-reports")
    assert shown.returncode == 0, shown.stderr
    assert "39 field reports." in shown.stdout and "Not stated." in shown.stdout and "keyword" in shown.stdout
    assert f"Total cost (strategies, index build and judge): {result['cost']:.3g}" in shown.stdout
    assert all(f"{r['cost']:.3g}" in shown.stdout for r in result["strategies"])
    bad = run_cli(tmp_path, model_server, "compare", "--corpus", str(corpus), "--question", "q", "--strategies", "rlm,bm25")
    assert bad.returncode == 2 and "strategies" in bad.stderr
