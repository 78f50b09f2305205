"""The OpenAPI document: valid 3.1, covering every HTTP function of the app, and the
contract a live `python -m devhost serve` keeps under schemathesis's generated requests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from rlm_activities.openapi import ROUTES, document
from tests.support.model_server import ModelServer
from tests.support.rlm import repl
from tests.test_cli import cli_env

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "schemathesis.toml"
# Every check, a fixed seed so a failure can be replayed, one worker: the machine is shared.
SCHEMATHESIS_RUN = ("--checks=all", "--max-examples=25", "--seed=1", "--workers=1", "--request-timeout=60", "--no-color")


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = document()
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_every_http_function_of_the_app_is_described() -> None:
    from devhost.functions import discover
    from function_app import app

    # A catch-all route parameter ({*path}) is a plain path parameter in OpenAPI.
    served = {
        (method.lower(), "/api/" + function.route.strip("/").replace("{*", "{"))
        for function in discover(app).http
        for method in function.methods
    }
    described = {(route.method, route.path) for route in ROUTES}
    assert served == described


def test_every_operation_documents_its_errors_with_the_error_body() -> None:
    spec = document()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if path == "/api/openapi.json" or path.startswith("/api/ui"):
                continue  # not API routes: the document itself, and the web UI's files
            assert "400" in operation["responses"], (method, path)
            for code, response in operation["responses"].items():
                if code.startswith("4"):
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "devhost serve exited before it served"
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_schemathesis_against_a_live_devhost_serve(tmp_path: Path, model_server: ModelServer) -> None:
    """Generated requests, valid and invalid, on every route: no 5xx, every response (status,
    content type, headers, body) as the document says. Two running queries at most, so
    the 429 path is exercised too; the model answers with code run over the corpus."""
    model_server.set_script(repl("Final = str(len(context))"))
    port = free_port()
    env = cli_env(tmp_path, model_server) | {"PYTHONPATH": str(ROOT), "RLM_MAX_RUNNING_QUERIES": "2"}
    log = (tmp_path / "serve.log").open("w")
    command = [sys.executable, "-m", "devhost", "serve", "--state-dir", str(tmp_path / "state"), "--port", str(port),
               "--no-function-keys"]
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        schema_url = f"http://127.0.0.1:{port}/api/openapi.json"
        wait_until_serving(schema_url, server)
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", f"--config-file={CONFIG}", "run", schema_url, *SCHEMATHESIS_RUN],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=840,
        )
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    served = (tmp_path / "serve.log").read_text()
    assert run.returncode == 0, f"{run.stdout[-12000:]}\n{run.stderr[-3000:]}\n--- serve ---\n{served[-4000:]}"
