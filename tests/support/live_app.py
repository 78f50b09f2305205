"""`python -m devhost serve` as a user starts it, on a free loopback port, with the model
behind the scripted server; and headless Chromium (Debian's, driven by Playwright) to
look at the web UI it serves."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = Path("/usr/bin/chromium")
# This machine's network is closed: no update checks, sync or first-run pages.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveApp:
    """A `devhost serve` subprocess; `url` is its origin once it answers. Its API routes
    need `key`, as the function key they need in Azure."""

    def __init__(self, workdir: Path, model_url: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = secrets.token_urlsafe(24)
        self.log = workdir / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "RLM_", "AZURE_"))}
        env |= {
            "PYTHONPATH": str(ROOT),
            "MODEL_PROVIDER": "openai",
            "MODEL_BASE_URL": model_url,
            "MODEL_API_KEY": "test-key",
            "COPILOT_HOME_DIR": str(workdir / "copilot-home"),
            "DEVHOST_FUNCTION_KEY": self.key,
            # A price table, so cost shows beside tokens (per million tokens, as providers list them).
            "RLM_PRICES": json.dumps({"gpt-5-4-mini": {"input": 400.0, "cached_input": 40.0, "output": 1600.0}}),
        }
        command = [
            sys.executable,
            "-m",
            "devhost",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--state-dir",
            str(workdir / "state"),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"devhost serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/ui/", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"devhost serve did not answer in {STARTUP_SECONDS} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers={"x-functions-key": self.key})


@contextmanager
def live_app(workdir: Path, model_url: str) -> Iterator[LiveApp]:
    app = LiveApp(workdir, model_url)
    try:
        app.wait_ready()
        yield app
    finally:
        app.stop()


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A browser context on a fresh profile; Playwright never downloads a browser of its own."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium (as root), or `apt-get install chromium`"
        )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot kept under test-artifacts/ui/ for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
