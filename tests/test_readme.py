"""The README's library snippet runs as written: copied out of the README into a fresh
Python process, against the scripted model and the local sandbox."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.model_server import ModelServer
from tests.support.rlm import repl
from tests.test_cli import cli_env

ROOT = Path(__file__).resolve().parents[1]
LOWEST = repl(
    "import re\n"
    "sections = context.split('\\n\\n## ')\n"
    "readings = [(float(m.group(1)), s.lstrip('# ').splitlines()[0]) for s in sections"
    " if (m := re.search(r'Lowest air temperature: (-?[0-9.]+) C', s))]\n"
    "value, title = min(readings)\n"
    "used_sections = [title]\n"
    "Final = f'{title}: {value} C'"
)


def readme_block(heading: str) -> str:
    """The first ```python block after `heading` in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no python block after {heading!r}"
    return match.group(1)


@pytest.mark.timeout(300)
def test_the_library_snippet_runs_as_written(tmp_path: Path, model_server: ModelServer) -> None:
    model_server.set_script(LOWEST)
    env = cli_env(tmp_path, model_server) | {"PYTHONPATH": str(ROOT), "RLM_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run(
        [sys.executable, "-c", readme_block("### As a library")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "Ridge Station weekly log, 10 March: -21.4 C ['Ridge Station weekly log, 10 March']"
    assert len(model_server.calls) == 1
