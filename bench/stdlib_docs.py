"""The benchmark corpus: the documentation of Python's standard library as pydoc renders it,
one document per module, and questions whose answers are computed from that text.

Real public text that every Python installation ships (Debian's python3 packages, the
python.org builds): nothing is downloaded. The build is reproducible for a given Python
version: modules are taken in sorted order, machine-specific parts (the FILE and DATA
sections, object addresses, install paths) are dropped, and the manifest records the
Python version and the corpus's sha256.

    .venv/bin/python -m bench.stdlib_docs [--out bench/data]

writes `stdlib-docs.jsonl` (the corpus: {id, title, content} per module),
`questions.jsonl` ({id, kind, question, expected, sections} per question) and
`manifest.json`. Ground truth is read back from the rendered text itself (the FUNCTIONS
and CLASSES listings), so every expected answer is what the corpus says.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import pkgutil
import pydoc
import re
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.stdlib_questions import questions

DEFAULT_OUT = Path("bench/data")
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


def render(name: str) -> str:
    """The module's pydoc page without the parts that differ between machines."""
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
    for path in sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path.home())}, key=len, reverse=True):
        body = body.replace(path, "<python>")
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
    for name in names or module_names():
        text = render(name)
        documents.append({"id": name, "title": name, "content": text})
        facts[name] = facts_of(name, text)
    corpus = "".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in documents)
    (out / "stdlib-docs.jsonl").write_text(corpus, encoding="utf-8")
    asked = questions(facts)
    (out / "questions.jsonl").write_text("".join(json.dumps(q, sort_keys=True) + "\n" for q in asked), encoding="utf-8")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the corpus, questions and manifest go")
    args = parser.parse_args(argv)
    print(json.dumps(build(args.out), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
