"""The benchmark corpus: the documentation of Python's standard library as pydoc renders it,
one document per module, and questions whose answers are computed from that text.

Real public text that every Python installation ships (Debian's python3 packages, the
python.org builds): nothing is downloaded. The build is reproducible for a given Python
version, whatever the machine, folder or environment it runs in: modules are imported and
rendered with an empty environment and a fixed working directory (pydoc renders default
values, and `cgi.FieldStorage`'s is `os.environ`), machine-specific parts (the FILE and
DATA sections, object addresses, install and home paths) are dropped, and the
manifest records the Python version and the corpus's sha256.

    .venv/bin/python -m bench.stdlib_docs [--out bench/data] [--modules os,json,...]

writes `stdlib-docs.jsonl` (the corpus: {id, title, content} per module),
`questions.jsonl` ({id, kind, question, expected} per question: exactly what `devhost
batch --file` takes, `kind` splitting its summary), `sections.jsonl` ({id, sections}: the
pages each answer rests on, for bench.retrieval) and `manifest.json`. Ground truth is read
back from the rendered text itself (the FUNCTIONS and CLASSES listings), so every expected
answer is what the corpus says.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import os
import pkgutil
import pydoc
import re
import sys
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stdlib_questions import questions

DEFAULT_OUT = Path("bench/data")
# What a line of questions.jsonl holds: the fields `devhost batch` accepts (BatchQuestion).
BATCH_FIELDS = ("id", "kind", "question", "expected")
# Packages whose public submodules are documents of their own.
PACKAGES = (
    "collections",
    "concurrent",
    "dbm",
    "email",
    "html",
    "http",
    "importlib",
    "json",
    "logging",
    "urllib",
    "wsgiref",
    "xml",
    "xmlrpc",
)
# Modules with side effects on import, platform-specific ones, and test and tool packages.
EXCLUDED = frozenset(
    "antigravity this idlelib tkinter turtle turtledemo test lib2to3 ensurepip pydoc_data msvcrt winreg winsound "
    "nt msilib venv __main__ builtins".split()
)
DROPPED_SECTIONS = frozenset({"DATA", "FILE", "MODULE REFERENCE"})
HEADING = re.compile(r"^[A-Z][A-Z ]+$")
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# "name(args)", an alias "name = other(args)", or a bound method "name(args) method of X instance".
FUNCTION_LINE = re.compile(r"^    (\w+)(?: = [\w.]+)?\((.*)\)(?: method of [\w.]+ instance)?$")
CLASS_LINE = re.compile(r"^    class (\w+)(?:\((.*)\))?$")
# Where the build runs from while it imports and renders: the same on every machine.
NEUTRAL_CWD = "/"
# Environment values this long are scrubbed from a page should one still show (a value a
# module kept from before the build cleared the environment): keys and tokens are longer,
# and shorter values ("/bin/bash", "C.UTF-8") are also ordinary words of the docs.
SCRUBBED_VALUE_CHARS = 16


@dataclass
class ModuleFacts:
    """What a module's rendered page lists: its functions (with signatures) and classes."""

    name: str
    functions: dict[str, str] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)


def module_names() -> list[str]:
    names = {m for m in sys.stdlib_module_names if not m.startswith("_") and m not in EXCLUDED}
    for package in PACKAGES:
        module = _import(package)
        if module is not None and hasattr(module, "__path__"):
            names |= {f"{package}.{info.name}" for info in pkgutil.iter_modules(module.__path__) if not info.name.startswith("_")}
    return sorted(n for n in names if n.split(".")[-1] not in EXCLUDED and _import(n) is not None)


def _import(name: str):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module this platform lacks is simply not in the corpus
            return None


@contextlib.contextmanager
def machine_neutral() -> Iterator[None]:
    """Import and render with an empty environment and a fixed working directory, so no
    value of this machine (a key in the environment, the folder the build runs from) can
    become a default value on a page; both are restored afterwards."""
    saved, cwd, tempdir = dict(os.environ), os.getcwd(), tempfile.tempdir
    os.environ.clear()  # in place: defaults bound to os.environ (cgi's) now render empty
    os.chdir(NEUTRAL_CWD)
    tempfile.tempdir = None  # found again without TMPDIR: the platform's default
    try:
        yield
    finally:
        tempfile.tempdir = tempdir
        os.chdir(cwd)
        os.environ.update(saved)


def machine_values() -> list[tuple[str, str]]:
    """What of this machine a page must not show, each with what stands in for it, longest
    first (so a prefix does not cut a longer value): the install and home folders, and every
    environment value long enough to be a key or a path of this machine. Read before
    `machine_neutral` clears them. (Not the temp folder: the docs name `/tmp` in examples.)"""
    python = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    folders = python | {str(Path.home())}
    found = {p: "<python>" if p in python else "<path>" for p in folders if len(p) > 1}
    found |= {v: "<environment>" for v in os.environ.values() if len(v) >= SCRUBBED_VALUE_CHARS and v not in found}
    return sorted(found.items(), key=lambda item: len(item[0]), reverse=True)


def render(name: str) -> str:
    """The module's pydoc page without the parts that differ between machines."""
    scrubbed = machine_values()
    with machine_neutral():
        return _page(name, scrubbed)


def _page(name: str, scrubbed: list[tuple[str, str]]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = pydoc.render_doc(_import(name), title="%s", renderer=pydoc.plaintext)
    kept: list[str] = []
    dropping = False
    for line in text.splitlines():
        if HEADING.match(line):
            dropping = line.strip() in DROPPED_SECTIONS
        if not dropping:
            kept.append(line.rstrip())
    body = ADDRESS.sub("", "\n".join(kept))
    for value, stand_in in scrubbed:
        body = body.replace(value, stand_in)
    return body.strip() + "\n"


def facts_of(name: str, text: str) -> ModuleFacts:
    """Functions and classes as the page's FUNCTIONS and CLASSES sections list them."""
    facts = ModuleFacts(name)
    section = None
    for line in text.splitlines():
        if HEADING.match(line):
            section = line.strip()
        elif section == "FUNCTIONS" and (m := FUNCTION_LINE.match(line)):
            facts.functions.setdefault(m.group(1), m.group(2))
        elif section == "CLASSES" and (m := CLASS_LINE.match(line)):
            facts.classes.setdefault(m.group(1), m.group(2) or "")
    return facts


def build(out: Path, names: list[str] | None = None) -> dict[str, object]:
    """Write the corpus, its questions and a manifest; `names` narrows the modules (for tests)."""
    out.mkdir(parents=True, exist_ok=True)
    documents = []
    facts: dict[str, ModuleFacts] = {}
    scrubbed = machine_values()
    with machine_neutral():  # modules are imported in it too: what they read at import is the same everywhere
        for name in names or module_names():
            text = _page(name, scrubbed)
            documents.append({"id": name, "title": name, "content": text})
            facts[name] = facts_of(name, text)
    corpus = "".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in documents)
    (out / "stdlib-docs.jsonl").write_text(corpus, encoding="utf-8")
    asked = questions(facts)
    write_jsonl(out / "questions.jsonl", [{k: q[k] for k in BATCH_FIELDS} for q in asked])
    write_jsonl(out / "sections.jsonl", [{"id": q["id"], "sections": q["sections"]} for q in asked])
    kinds: dict[str, int] = defaultdict(int)
    for q in asked:
        kinds[q["kind"]] += 1
    manifest = {
        "python": sys.version.split()[0],
        "documents": len(documents),
        "chars": sum(len(d["content"]) for d in documents),
        "corpus_sha256": hashlib.sha256(corpus.encode("utf-8")).hexdigest(),
        "questions": len(asked),
        "kinds": dict(sorted(kinds.items())),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def write_jsonl(path: Path, lines: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines), encoding="utf-8")


def read_questions(data: Path) -> list[dict[str, Any]]:
    """The questions with the pages each answer rests on, joined on id (what bench.retrieval scores)."""
    sections = {
        s["id"]: s["sections"] for s in map(json.loads, (data / "sections.jsonl").read_text(encoding="utf-8").splitlines())
    }
    asked = [json.loads(line) for line in (data / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    return [q | {"sections": sections[q["id"]]} for q in asked]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the corpus, questions and manifest go")
    parser.add_argument("--modules", help="comma-separated modules instead of the whole library (a small set, for a quick look)")
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.modules.split(",") if m.strip()] if args.modules else None
    print(json.dumps(build(args.out, names), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
