"""What `python -m devhost ask`, `batch` and `compare` start is recorded as an HTTP start is:
listed by `GET /api/queries`, `/api/batches` and `/api/compare` of a host serving the same
state dir, and a batch_id claimed by the CLI is refused to another body, over HTTP and at
the CLI alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.retrieval import answer_from_passages, is_answer, needle_documents
from tests.support.rlm import repl
from tests.test_cli import cli_env
from tests.test_http_api import serve_app

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)


def script(request: ScriptedRequest) -> str:
    if is_answer(request):
        return answer_from_passages(request)
    return repl("import re\nFinal = re.search(r'secret code is (\\d+)', context).group(1)")


def run_cli(tmp_path: Path, server: ModelServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI over the state dir and data dir the in-process host of `rlm_env` uses."""
    command = [sys.executable, "-m", "devhost", *args, "--state-dir", str(tmp_path / "state")]
    env = cli_env(tmp_path, server) | {"PYTHONPATH": str(ROOT), "RLM_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_cli_starts_are_listed_and_a_claimed_batch_id_is_refused_to_another_body(
    rlm_env: Path, tmp_path: Path, model_server: ModelServer
) -> None:
    model_server.set_script(script)
    corpus = write(tmp_path / "reports.jsonl", needle_documents())
    questions = write(tmp_path / "questions.jsonl", [{"question": "What is the vault's secret code?", "expected": "4417"}])
    others = write(tmp_path / "others.jsonl", [{"question": "Which report is the longest?"}])

    asked = run_cli(tmp_path, model_server, "ask", "--corpus", str(corpus), "--question", "The vault's code?",
                    "--instance-id", "cli-ask-1", "--json")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    compared = run_cli(tmp_path, model_server, "compare", "--corpus", str(corpus), "--question", "The code, again?",
                       "--strategies", "rlm,keyword", "--no-judge", "--compare-id", "cli-compare-1", "--json")  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    batched = run_cli(tmp_path, model_server, "batch", "--file", str(questions), "--corpus", str(corpus),
                      "--batch-id", "cli-batch-1", "--json")  # fmt: skip
    assert batched.returncode == 0, batched.stderr
    calls = len(model_server.calls)
    refused = run_cli(
        tmp_path, model_server, "batch", "--file", str(others), "--corpus", str(corpus), "--batch-id", "cli-batch-1"
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "error: batch cli-batch-1 was started with another body; give a new --batch-id to run this one"
    ]
    assert len(model_server.calls) == calls
    again = run_cli(tmp_path, model_server, "batch", "--batch-id", "cli-batch-1", "--json")  # its summary, as stored
    assert again.returncode == 0 and json.loads(again.stdout)["accuracy"] == 1.0

    async def read(client: httpx.AsyncClient) -> dict[str, Any]:
        http_body = {"batch_id": "cli-batch-1", "questions": ["Something else?"], "corpus": "## A\nalpha"}
        return {
            "queries": (await client.get("/api/queries")).json()["queries"],
            "batches": (await client.get("/api/batches")).json()["batches"],
            "comparisons": (await client.get("/api/compare")).json()["comparisons"],
            "conflict": await client.post("/api/batches", json=http_body),
            "query": (await client.get("/api/queries/cli-ask-1")).json(),
        }

    seen = serve_app(rlm_env, read)
    assert [(q["instance_id"], q["status"], q["question"]) for q in seen["queries"]] == [
        ("cli-ask-1", "Completed", "The vault's code?")
    ]
    assert seen["query"]["result"]["answer"] == "4417"
    assert [(b["batch_id"], b["status"], b["questions"]) for b in seen["batches"]] == [("cli-batch-1", "Completed", 1)]
    assert [(c["compare_id"], c["status"], c["question"], c["strategies"]) for c in seen["comparisons"]] == [
        ("cli-compare-1", "Completed", "The code, again?", ["rlm", "keyword"])
    ]
    assert seen["conflict"].status_code == 409 and "another body" in seen["conflict"].json()["error"]
