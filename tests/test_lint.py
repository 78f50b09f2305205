"""The code stays clean by the project's ruff rules (ruff.toml): unused imports, undefined
names, import order and bug-prone patterns fail the build."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    checked = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_core_never_imports_the_functions_layer() -> None:
    """Dependencies point inward: shared/ knows nothing of Functions, Durable or the hosts."""
    outward = ("azure.functions", "azure.durable_functions", "rlm_activities", "devhost", "function_app")
    offenders = []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith(outward)]
    assert not offenders
