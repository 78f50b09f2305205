"""The benchmark corpus builder: pydoc pages without machine-specific parts, facts read
back from the text, questions of every kind whose answers are what the pages say."""

from __future__ import annotations

import json
from pathlib import Path

from bench.stdlib_docs import build, facts_of, render
from bench.stdlib_questions import parameters

MODULES = ["base64", "bz2", "codecs", "configparser", "email.charset", "email.errors", "gzip", "io", "json", "lzma", "os",
           "pickle", "quopri", "re", "shutil", "tarfile", "xml.dom", "xml.sax", "zipfile", "zlib"]  # fmt: skip


def test_pages_are_reproducible_and_carry_no_machine_details() -> None:
    first, second = render("os"), render("os")
    assert first == second
    assert "FUNCTIONS" in first and "\nDATA\n" not in first and "\nFILE\n" not in first
    assert " at 0x" not in first and str(Path.home()) not in first


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
    questions = [json.loads(line) for line in (tmp_path / "questions.jsonl").read_text().splitlines()]
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
