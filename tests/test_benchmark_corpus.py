"""The benchmark corpus builder: pydoc pages without machine-specific parts, the same
corpus from any machine, folder or environment, facts read back from the text, questions of
every kind whose answers are what the pages say, in the form `devhost batch` runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.stdlib_docs import build, facts_of, read_questions, render
from bench.stdlib_questions import parameters
from rlm_activities.batch_models import BatchRequest
from shared.prompts import ROOT_SYSTEM_PROMPT
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import question_of, repl
from tests.test_cli import cli_env

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["base64", "bz2", "cgi", "codecs", "configparser", "email.charset", "email.errors", "gzip", "io", "json", "lzma",
           "os", "pickle", "quopri", "re", "shutil", "tarfile", "tempfile", "xml.dom", "xml.sax", "zipfile", "zlib"]  # fmt: skip
MARKER = "sk-marker-3f9c2a7d41e8b605"  # a key as a user's environment would hold it


def test_pages_are_reproducible_and_carry_no_machine_details(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_API_KEY", MARKER)
    first, second = render("os"), render("os")
    assert first == second
    assert "FUNCTIONS" in first and "\nDATA\n" not in first and "\nFILE\n" not in first
    assert " at 0x" not in first and str(Path.home()) not in first
    cgi = render("cgi")  # FieldStorage's default environ is os.environ, rendered by pydoc
    assert "environ=environ({})" in cgi and MARKER not in cgi
    assert os.environ["MODEL_API_KEY"] == MARKER  # the environment is back after rendering


def build_elsewhere(folder: Path, env: dict[str, str]) -> dict[str, object]:
    """A build by the command, from `folder` as its working, home and temp directory."""
    folder.mkdir()
    out = folder / "out"
    command = [sys.executable, "-m", "bench.stdlib_docs", "--out", str(out), "--modules", ",".join(MODULES)]
    env = env | {"PYTHONPATH": str(ROOT), "HOME": str(folder), "TMPDIR": str(folder)}
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    for written in out.iterdir():
        text = written.read_text(encoding="utf-8")
        assert MARKER not in text and str(folder) not in text, written.name
    return json.loads((out / "manifest.json").read_text())


def test_builds_from_different_machines_give_the_same_corpus(tmp_path: Path) -> None:
    plain = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    marked = plain | {"MODEL_API_KEY": MARKER, "RLM_SECRET_PATH": f"/srv/{MARKER}/keys", "LANG": "en_US.UTF-8"}
    first, second = build_elsewhere(tmp_path / "one", marked), build_elsewhere(tmp_path / "two", plain)
    assert first["corpus_sha256"] == second["corpus_sha256"] and first["documents"] == len(MODULES)


def test_facts_come_from_the_functions_and_classes_listings() -> None:
    gzip = facts_of("gzip", render("gzip"))
    assert parameters(gzip.functions["open"])[:2] == [("filename", None), ("mode", "'rb'")]
    assert "GzipFile" in gzip.classes and "BadGzipFile" in gzip.classes
    assert set(facts_of("json", render("json")).functions) >= {"dump", "dumps", "load", "loads"}


def test_parameters_split_only_at_top_level_commas() -> None:
    signature = "a, b=(1, 2), *, sep=', ', end='\\n', **kw"
    assert parameters(signature) == [("a", None), ("b", "(1, 2)"), ("sep", "', '"), ("end", "'\\n'"), ("kw", None)]


def test_built_questions_cover_every_kind_and_match_the_pages(tmp_path: Path) -> None:
    manifest = build(tmp_path, MODULES)
    documents = {d["title"]: d["content"] for d in map(json.loads, (tmp_path / "stdlib-docs.jsonl").read_text().splitlines())}
    questions = read_questions(tmp_path)
    assert manifest["documents"] == len(MODULES) and set(documents) == set(MODULES)
    assert {q["kind"] for q in questions} == {"needle", "multi-hop", "aggregation", "filter"}
    assert all(set(q["sections"]) <= set(documents) for q in questions)
    by_text = {q["question"]: q["expected"] for q in questions}
    compress = (
        "List, alphabetically and comma-separated, the modules that document both a `compress` and a `decompress` function."
    )
    assert by_text[compress] == "bz2, gzip, lzma, zlib"
    openers = "How many modules document a function named `open`?"
    assert by_text[openers] == str(sum(1 for text in documents.values() if "\n    open(" in text.split("\nFUNCTIONS\n")[-1]))
    for q in (q for q in questions if q["kind"] == "needle" and "default value" in q["question"]):
        module_function = q["question"].split("`")[3]
        module, function = module_function.rsplit(".", 1)
        assert f"    {function}(" in documents[module] and q["expected"] in documents[module]
    assert build(tmp_path, MODULES)["corpus_sha256"] == manifest["corpus_sha256"]


def test_written_questions_are_what_devhost_batch_takes(tmp_path: Path) -> None:
    build(tmp_path, MODULES)
    lines = [json.loads(line) for line in (tmp_path / "questions.jsonl").read_text().splitlines()]
    request = BatchRequest.model_validate({"questions": lines, "corpus": "x"})  # strict: no field it would refuse
    assert [q.model_dump(exclude_none=True) for q in request.questions] == lines
    assert {q.kind for q in request.questions} == {"needle", "multi-hop", "aggregation", "filter"}
    joined = read_questions(tmp_path)  # bench.retrieval's view: the pages each answer rests on
    assert [q["id"] for q in joined] == [q["id"] for q in lines] and all(q["sections"] for q in joined)


CLASS_NEEDLE = re.compile(r"documents a class named `(\w+)`")


def answer_by_code(request: ScriptedRequest) -> str:
    """Class needles are found by code over every page; anything else gets a wrong answer."""
    assert request.system.startswith(ROOT_SYSTEM_PROMPT)
    found = CLASS_NEEDLE.search(question_of(request))
    if found is None:
        return repl("Final = f\"unknown after reading {context.count(chr(10) + '## ') + 1} pages\"")
    code = (
        "import re\n"
        "pages = re.split(r'^## ', context, flags=re.M)[1:]\n"
        f"used_sections = [p.split(chr(10), 1)[0] for p in pages if re.search(r'^    class {found.group(1)}\\b', p, re.M)]\n"
        "Final = used_sections[0] if used_sections else 'not found'"
    )
    return repl(code)


@pytest.mark.timeout(300)
def test_the_documented_batch_command_runs_the_benchmark(tmp_path: Path, model_server: ModelServer) -> None:
    """docs/benchmarks.md's command over a small build: every question runs, split by kind."""
    model_server.set_script(answer_by_code)
    data = tmp_path / "data"
    build(data, MODULES)
    command = [sys.executable, "-m", "devhost", "batch", "--corpus", str(data / "stdlib-docs.jsonl"),
               "--file", str(data / "questions.jsonl"), "--strategies", "rlm", "--concurrency", "8",
               "--batch-id", "stdlib-small", "--state-dir", str(tmp_path / "state"), "--json"]  # fmt: skip
    env = cli_env(tmp_path, model_server) | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    asked = [json.loads(line) for line in (data / "questions.jsonl").read_text().splitlines()]
    assert (summary["count"], summary["answered"]) == (len(asked), len(asked))
    kinds = {q["kind"] for q in asked}
    assert {k: v["count"] for k, v in summary["kinds"].items()} == {k: sum(q["kind"] == k for q in asked) for k in kinds}
    needles = [q for q in asked if q["kind"] == "needle"]
    by_class = [q for q in needles if CLASS_NEEDLE.search(q["question"])]
    assert by_class and summary["kinds"]["needle"]["accuracy"] == round(len(by_class) / len(needles), 4)
    assert all(summary["kinds"][k]["accuracy"] == 0.0 for k in kinds - {"needle"})
