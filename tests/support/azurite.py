"""The real Azure Storage emulator (Azurite from npm) on loopback, for blob and queue tests."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

APP_ROOT = Path(__file__).resolve().parents[2]
AZURITE = APP_ROOT / "node_modules" / ".bin" / "azurite"
# Azurite's documented, public development account: not a secret.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
LISTENING = re.compile(r"Azurite (Blob|Queue) service is successfully listening at (http://\S+)")
START_TIMEOUT_SECONDS = 60


class Azurite:
    """Azurite with in-memory storage on ephemeral ports; a context manager."""

    def __init__(self, memory_limit_mb: int = 512) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.endpoints: dict[str, str] = {}
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Azurite:
        if not AZURITE.exists():
            raise RuntimeError(f"{AZURITE} is missing: run `npm install` (`make setup`)")
        self._process = subprocess.Popen(
            [str(AZURITE), "--inMemoryPersistence", f"--extentMemoryLimit={self.memory_limit_mb}",
             "--blobPort", "0", "--queuePort", "0", "--tablePort", "0",
             "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=APP_ROOT,
        )
        ready = threading.Event()
        output: list[str] = []
        threading.Thread(target=self._read, args=(output, ready), name="azurite-output", daemon=True).start()
        if not ready.wait(START_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError("Azurite did not start:\n" + "".join(output))
        return self

    def _read(self, output: list[str], ready: threading.Event) -> None:
        """Learn the ports from Azurite's startup lines, then keep draining its output."""
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            output.append(line)
            if match := LISTENING.search(line):
                self.endpoints[match.group(1).lower()] = match.group(2)
                if len(self.endpoints) == 2:
                    ready.set()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoints['blob']}/{ACCOUNT};QueueEndpoint={self.endpoints['queue']}/{ACCOUNT};"
        )
