"""The code stays clean by the project's ruff rules (ruff.toml): unused imports, undefined
names, import order and bug-prone patterns fail the build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    checked = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
