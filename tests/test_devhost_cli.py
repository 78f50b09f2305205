"""`python -m devhost` as a user runs it, in a real subprocess: serve a folder holding a
function_app.py and its host.json, with the keys it prints; one host per state dir; one
clear line (no traceback) for a busy port, a broken local.settings.json and Ctrl+C."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.devhost_apps import hello_cities
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import iteration_of, repl
from tests.test_cli import SAMPLE, ask, cli_env, finish

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)
KEY_LINE = re.compile(r"^\s+(function key \(default\)|Durable system key \(durabletask_extension\)): (\S+)$")


@pytest.fixture
def app_folder(tmp_path: Path) -> Path:
    """A folder as `func init` leaves it: function_app.py, host.json, nothing else."""
    folder = tmp_path / "cities"
    folder.mkdir()
    shutil.copy(hello_cities.__file__, folder / "function_app.py")
    (folder / "host.json").write_text(json.dumps(
        {"version": "2.0", "extensions": {"durableTask": {"hubName": "CitiesHub"}}}), encoding="utf-8")
    return folder


def devhost(folder: Path, *args: str) -> subprocess.Popen[str]:
    env = cli_env(folder, None) | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "devhost", *args], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def banner(process: subprocess.Popen[str]) -> dict[str, str]:
    """Read the serve banner up to the last key; returns the keys it printed."""
    keys: dict[str, str] = {}
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while len(keys) < 2:
        assert time.monotonic() < deadline and process.poll() is None, process.communicate(timeout=10)
        match = KEY_LINE.match(process.stdout.readline().rstrip("\n"))
        if match:
            keys["function" if match.group(1).startswith("function") else "system"] = match.group(2)
    return keys


def one_clear_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


def test_serve_an_app_folder_with_the_keys_it_prints(app_folder: Path) -> None:
    port = free_port()
    server = devhost(app_folder, "serve", "--port", str(port), "--state-dir", "state")
    try:
        keys = banner(server)
        origin = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=60) as http:
            refused = http.post(f"{origin}/api/secure/orchestrators/HelloCities")
            started = http.post(f"{origin}/api/secure/orchestrators/HelloCities", params={"code": keys["function"]})
            links = started.json()
            deadline = time.monotonic() + 60
            while (status := http.get(links["statusQueryGetUri"])).status_code == 202:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        second = devhost(app_folder, "resume", "--state-dir", "state")
        second_code, _, second_err = finish(second)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        code, _, err = finish(server)
    assert refused.status_code == 401
    assert "taskHub=CitiesHub" in links["statusQueryGetUri"] and f"code={keys['system']}" in links["statusQueryGetUri"]
    assert status.json()["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert second_code == 1
    assert "another devhost (pid" in one_clear_line(second_err) and "is using the state dir" in second_err
    assert code == 130 and "Traceback" not in err


def test_a_busy_port_is_one_line(app_folder: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = finish(devhost(app_folder, "serve", "--port", str(port), "--state-dir", "state"))
    assert code == 1
    assert one_clear_line(err) == (f"error: port {port} on 127.0.0.1 is already in use; stop whatever listens there "
                                   "or pass --port with a free one")


def test_a_broken_local_settings_file_is_one_line(app_folder: Path) -> None:
    (app_folder / "local.settings.json").write_text('{"Values": {"A": "1",}}', encoding="utf-8")
    code, _, err = finish(devhost(app_folder, "serve", "--state-dir", "state"))
    assert code == 2
    assert one_clear_line(err).startswith("error: local.settings.json is not valid JSON: Expecting property name")


def test_ctrl_c_during_ask_says_how_to_resume(tmp_path: Path, model_server: ModelServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    held, release = threading.Event(), threading.Event()

    def script(request: ScriptedRequest):
        if iteration_of(request) == 2 and not release.is_set():
            held.set()
            release.wait(60)
        if iteration_of(request) < 2:
            return repl("x = 20 + 1\nprint(x)")
        return repl("Final = str(x * 2)")

    model_server.set_script(script)
    args = ("--corpus", str(SAMPLE), "--question", "Double it", "--instance-id", "interrupted-1", "--json")
    first = ask(tmp_path, model_server, *args)
    assert held.wait(120), "the query never reached its second iteration"
    os.killpg(first.pid, signal.SIGINT)
    code, _, err = finish(first)
    release.set()
    assert code == 130
    assert one_clear_line(err) == (f"stopped; query interrupted-1 is saved; resume it with: python -m devhost ask "
                                   f"--instance-id interrupted-1 --state-dir {tmp_path / 'state'}")
    code, out, err = finish(ask(tmp_path, model_server, "--instance-id", "interrupted-1", "--json"))
    assert code == 0, err
    assert json.loads(out)["answer"] == "42"
