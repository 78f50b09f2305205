"""Compare through a live `devhost serve`: RLM and the four baselines on one question side
by side, graded against the expected answer and by the judge, plus the pairwise preferences."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.grading import JUDGE_SYSTEM_PROMPT
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.retrieval import NEEDLE_TITLE, answer_from_passages, is_answer, is_rewrite, needle_documents
from tests.support.rlm import repl
from tests.test_http_api import serve_app

pytestmark = pytest.mark.timeout(300)
RLM_CODE = repl(
    "import re\n"
    "for part in context.split('\\n## ')[1:]:\n"
    "    m = re.search(r'secret code is (\\d+)', part)\n"
    "    if m:\n"
    "        used_sections = [part.splitlines()[0].strip()]\n"
    "        Final = 'The secret code is ' + m.group(1) + '.'\n"
    "        break"
)
ANSWERS = re.compile(r"Answer A:\n(.*?)\n\nAnswer B:\n(.*?)\n\nGive", re.DOTALL)


def is_judge(request: ScriptedRequest) -> bool:
    return request.system.strip() == JUDGE_SYSTEM_PROMPT.strip()


def judge(request: ScriptedRequest) -> str:
    """Fixed verdicts: relevance 5; groundedness 4 when the cited text holds the code, else 1;
    coherence 3; between two answers, the one citing a passage ("[n]")."""
    prompt = request.prompt
    if "Rubric: RELEVANCE" in prompt:
        return "It answers the question.\nScore: 5"
    if "Rubric: GROUNDEDNESS" in prompt:
        cited = prompt.split("Cited sections:", 1)[1]
        return "Score: 4" if f"## {NEEDLE_TITLE}" in cited and "4417" in cited else "Score: 1"
    if "Rubric: COHERENCE" in prompt:
        return "Clear enough.\nScore: 3"
    a, b = ANSWERS.search(prompt).groups()
    if ("[" in a) == ("[" in b):
        return "Winner: tie"
    return "Winner: A" if "[" in a else "Winner: B"


def script(request: ScriptedRequest) -> str:
    if is_judge(request):
        return judge(request)
    if is_rewrite(request):
        return "ANSWER"
    if is_answer(request):
        return answer_from_passages(request)
    return RLM_CODE


async def finished(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    for _ in range(2400):
        body = (await client.get(url)).json()
        if body["status"] not in ("Pending", "Running"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never finished")


def test_compare_returns_all_five_strategies_side_by_side_with_scores(rlm_env: Path, model_server: ModelServer) -> None:
    model_server.set_script(script)
    body = {"question": "What is the vault's secret code?", "documents": needle_documents(), "expected": "4417"}

    async def run(client: httpx.AsyncClient):
        started = await client.post("/api/compare", json=body)
        assert started.status_code == 202, started.text
        links = started.json()
        done = await finished(client, links["status_url"])
        traces = {
            s["strategy"]: (await client.get(f"/api/queries/{s['instance_id']}/trace")).json()
            for s in done["result"]["strategies"]
        }
        missing = await client.get("/api/compare/nope-nope")
        bad = await client.post("/api/compare", json={**body, "strategies": ["rlm", "bm25"]})
        return links, done, traces, missing, bad

    links, done, traces, missing, bad = serve_app(rlm_env, run)
    assert links["status_url"].endswith(f"/api/compare/{links['compare_id']}") and "statusQueryGetUri" in links["management"]
    assert done["status"] == "Completed", done
    assert done["progress"]["phase"] == "done" and set(done["progress"]["strategies"].values()) == {"done"}
    result = done["result"]
    assert result["question"] == body["question"] and result["expected"] == "4417"
    rows = {s["strategy"]: s for s in result["strategies"]}
    assert list(rows) == ["rlm", "keyword", "vector", "hybrid", "agentic"]
    for strategy, row in rows.items():
        assert "4417" in row["answer"] and row["error"] is None
        assert {"title": NEEDLE_TITLE, "document_id": "needle"} in row["sources"]
        assert row["latency_seconds"] > 0 and row["usage"]["model_calls"] >= 1
        assert row["instance_id"] == f"{links['compare_id']}-{strategy}"
        # EM against "4417"; F1 with one shared token: RLM's "The secret code is 4417." is 4 tokens
        # once "the" goes (p 1/4, r 1), the baselines' "... 4417 [1]." add the citation's "1".
        expected_f1 = 0.4 if strategy == "rlm" else 0.3333
        assert row["scores"] == {"exact_match": True, "f1": expected_f1, "relevance": 5, "groundedness": 4, "coherence": 3}
    assert traces["rlm"]["steps"][0]["kind"] == "generate" and traces["keyword"]["steps"][0]["kind"] == "index"
    preference = {(p["a"], p["b"]): p["winner"] for p in result["preference"]}
    assert len(preference) == 10  # every pair of five
    assert all(preference[("rlm", other)] == other for other in ("keyword", "vector", "hybrid", "agentic"))
    assert preference[("keyword", "vector")] == "tie"
    judge_calls = [c for c in model_server.calls if is_judge(c.request)]
    assert len(judge_calls) == 5 * 3 + 10 * 2  # three rubrics per answer, both orders per pair
    assert result["judge_usage"]["model_calls"] == len(judge_calls)
    assert result["index"]["built"] == ["keyword", "vector"]
    assert missing.status_code == 404 and "no comparison" in missing.json()["error"]
    assert bad.status_code == 400 and bad.json()["details"][0]["field"].startswith("strategies")


def test_strategies_whose_embeddings_fail_are_failed_rows_and_the_others_answer(rlm_env: Path, model_server: ModelServer) -> None:
    from tests.support.model_server import ScriptedError

    model_server.set_script(script)
    model_server.fail_embeddings(*[ScriptedError(400, "no such embedding model")] * 50)
    body = {"question": "What is the vault's secret code?", "documents": needle_documents(), "expected": "4417", "judge": False}

    async def run(client: httpx.AsyncClient):
        started = await client.post("/api/compare", json={**body, "strategies": ["rlm", "keyword", "vector", "hybrid"]})
        return await finished(client, started.json()["status_url"])

    done = serve_app(rlm_env, run)
    assert done["status"] == "Completed", done
    rows = {s["strategy"]: s for s in done["result"]["strategies"]}
    assert rows["rlm"]["scores"]["exact_match"] is True and rows["keyword"]["scores"]["exact_match"] is True
    for strategy in ("vector", "hybrid"):
        assert rows[strategy]["answer"] is None and "no such embedding model" in rows[strategy]["error"]
        assert rows[strategy]["scores"]["exact_match"] is False
    assert done["progress"]["strategies"] == {"rlm": "done", "keyword": "done", "vector": "failed", "hybrid": "failed"}
    assert done["result"]["index"] is None and done["result"]["preference"] == []
    assert not [c for c in model_server.calls if is_judge(c.request)]
