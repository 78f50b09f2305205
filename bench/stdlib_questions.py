"""Questions over the standard-library documentation corpus, with answers computed from it.

Four kinds, chosen to show where each approach should win:
- `needle`: one fact on one page (a parameter's default, the module of a class);
- `multi-hop`: find a page through one fact, then read another fact from it;
- `aggregation`: count or list over every page (no top-k of passages holds them all);
- `filter`: the same, restricted by a condition on each page.

Every question lists the `sections` (module pages) its answer rests on, so retrieval can be
scored by whether it found them. Picks are seeded, so the same corpus gives the same set.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.stdlib_docs import ModuleFacts

SEED = 11
SIMPLE_DEFAULT = re.compile(r"^(?:-?\d+(?:\.\d+)?|True|False|'[\w .:/-]{1,20}')$")
PARAMETER = re.compile(r"^\*{0,2}(\w+)(?:=(.*))?$")


def parameters(signature: str) -> list[tuple[str, str | None]]:
    """(name, default) of each parameter in a rendered signature; commas inside brackets or
    quotes do not split, and the bare `*` / `/` markers are skipped."""
    parts, depth, quote, current = [], 0, "", ""
    for char in signature:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    found = []
    for part in parts:
        match = PARAMETER.match(part)
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def _ask(kind: str, question: str, expected: Any, sections: list[str]) -> dict[str, Any]:
    return {"kind": kind, "question": question, "expected": str(expected), "sections": sorted(set(sections))}


def _listing(names: list[str]) -> str:
    return ", ".join(sorted(names))


def questions(facts: dict[str, ModuleFacts]) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    by_function: dict[str, list[str]] = defaultdict(list)
    by_class: dict[str, list[str]] = defaultdict(list)
    for module, f in sorted(facts.items()):
        for name in f.functions:
            by_function[name].append(module)
        for name in f.classes:
            by_class[name].append(module)
    asked: list[dict[str, Any]] = []

    # needles: a parameter's default, on the only page documenting that function
    defaults = [
        (module, name, param, default)
        for name, modules in sorted(by_function.items())
        if len(modules) == 1 and not name.startswith("_")
        for module in modules
        for param, default in parameters(facts[module].functions[name])
        if default is not None and SIMPLE_DEFAULT.match(default)
    ]
    for module, name, param, default in rng.sample(defaults, min(10, len(defaults))):
        asked.append(
            _ask(
                "needle",
                f"What is the default value of the `{param}` parameter of `{module}.{name}`?",
                default.strip("'"),
                [module],
            )
        )
    unique_classes = sorted((name, modules[0]) for name, modules in by_class.items() if len(modules) == 1 and len(name) > 6)
    for name, module in rng.sample(unique_classes, min(5, len(unique_classes))):
        asked.append(_ask("needle", f"Which module of the standard library documents a class named `{name}`?", module, [module]))

    # multi-hop: through a unique class to its module's function count; through a unique
    # function to its module's `open`
    with_functions = [(n, m) for n, m in unique_classes if facts[m].functions]
    for name, module in rng.sample(with_functions, min(4, len(with_functions))):
        count = len(facts[module].functions)
        asked.append(
            _ask(
                "multi-hop",
                f"The class `{name}` is documented in exactly one module. How many functions does that module's documentation list?",
                count,
                [module],
            )
        )
    openers = [m for m in by_function.get("open", []) if "mode" in dict(parameters(facts[m].functions["open"]))]
    hops = []
    for module in openers:
        own = sorted(n for n in facts[module].functions if len(by_function[n]) == 1 and not n.startswith("_"))
        if own:
            hops.append((module, rng.choice(own)))
    for module, name in rng.sample(hops, min(4, len(hops))):
        mode = dict(parameters(facts[module].functions["open"]))["mode"]
        question = f"The function `{name}` is documented in exactly one module. What is the default value of the `mode` parameter of that module's `open` function?"
        asked.append(_ask("multi-hop", question, (mode or "none (it has no default)").strip("'"), [module]))

    # aggregations: counts and lists over every page
    shared = sorted(
        (n for n, ms in by_function.items() if 3 <= len(ms) <= 20 and not n.startswith("_")),
        key=lambda n: (-len(by_function[n]), n),
    )
    for name in shared[:4]:
        asked.append(
            _ask(
                "aggregation", f"How many modules document a function named `{name}`?", len(by_function[name]), by_function[name]
            )
        )
    for name in [n for n in shared if len(by_function[n]) <= 6][:3]:
        asked.append(
            _ask(
                "aggregation",
                f"List, alphabetically and comma-separated, every module that documents a function named `{name}`.",
                _listing(by_function[name]),
                by_function[name],
            )
        )
    error_modules = by_class.get("Error", [])
    asked.append(_ask("aggregation", "How many modules document a class named `Error`?", len(error_modules), error_modules))

    # filters: the same, restricted by a condition on each page
    with_encoding = [m for m in by_function.get("open", []) if "encoding" in dict(parameters(facts[m].functions["open"]))]
    asked.append(
        _ask(
            "filter",
            "List, alphabetically and comma-separated, the modules whose `open` function takes an `encoding` parameter.",
            _listing(with_encoding),
            by_function.get("open", []),
        )
    )
    read_binary = [m for m in openers if (dict(parameters(facts[m].functions["open"]))["mode"] or "").strip("'") == "rb"]
    asked.append(
        _ask(
            "filter",
            "How many modules document an `open` function whose `mode` parameter defaults to 'rb'?",
            len(read_binary),
            by_function.get("open", []),
        )
    )
    both = sorted(set(by_function.get("compress", [])) & set(by_function.get("decompress", [])))
    asked.append(
        _ask(
            "filter",
            "List, alphabetically and comma-separated, the modules that document both a `compress` and a `decompress` function.",
            _listing(both),
            by_function.get("compress", []) + by_function.get("decompress", []),
        )
    )
    big = sorted(m for m in error_modules if len(facts[m].functions) >= 10)
    asked.append(
        _ask("filter", "How many modules document a class named `Error` and list at least 10 functions?", len(big), error_modules)
    )
    email_modules = sorted(m for m in facts if m.startswith("email.") and facts[m].classes)
    asked.append(
        _ask(
            "filter",
            "How many `email.*` submodules document at least one class?",
            len(email_modules),
            [m for m in facts if m.startswith("email.")],
        )
    )
    no_functions = sorted(m for m in facts if m.startswith("xml.") and not facts[m].functions)
    asked.append(
        _ask(
            "filter",
            "List, alphabetically and comma-separated, the `xml.*` modules whose documentation lists no functions.",
            _listing(no_functions),
            [m for m in facts if m.startswith("xml.")],
        )
    )

    for number, question in enumerate(asked, start=1):
        question["id"] = f"{question['kind']}-{number:02d}"
    return asked
