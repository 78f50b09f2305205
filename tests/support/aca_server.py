"""An ACA Dynamic Sessions-compatible data plane on loopback, running code in real local interpreters.

Each session identifier gets a persistent Python process (the local sandbox's child in
its `run` mode) whose working directory stands in for /mnt/data. Routes and response
shapes follow DESIGN section 4; stdout is capped at 4096 characters like ACA's default.
Faults can be injected (`fail_next`) to exercise the client's retries.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from shared.sandbox.aca import IDENTIFIER, LEGACY_API_VERSION
from shared.sandbox.base import CellLimits, SessionLost
from shared.sandbox.local import SandboxProcess

STDOUT_CAP = 4096
FILE_CONTENT = re.compile(r"^/files/([^/]+)/content$")


class ACAServer:
    """Start with `with ACAServer() as server:`; clients authenticate with `server.token`."""

    def __init__(self, limits: CellLimits | None = None, token: str = "loopback-token") -> None:
        self.limits = limits or CellLimits(timeout_seconds=30, memory_mb=1024, output_max_chars=1_000_000)
        self.token = token
        self.root = Path(tempfile.mkdtemp(prefix="aca-loopback-"))
        self.kernels: dict[str, SandboxProcess] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.faults: list[tuple[int, float | None]] = []
        self.log: list[tuple[str, str, int]] = []
        self.identifiers: set[str] = set()
        self.guard = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ACAServer:
        threading.Thread(target=self.httpd.serve_forever, name="aca-loopback", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        for identifier in list(self.kernels):
            self.drop(identifier)
        shutil.rmtree(self.root, ignore_errors=True)

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `count` requests with `status` (and a Retry-After header if given)."""
        with self.guard:
            self.faults.extend([(status, retry_after)] * count)

    def take_fault(self) -> tuple[int, float | None] | None:
        with self.guard:
            return self.faults.pop(0) if self.faults else None

    def data_dir(self, identifier: str) -> Path:
        path = self.root / identifier
        path.mkdir(exist_ok=True)
        return path

    def lock(self, identifier: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(identifier, threading.Lock())

    def kernel(self, identifier: str) -> SandboxProcess:
        kernel = self.kernels.get(identifier)
        if kernel is None or not kernel.alive():
            kernel = self.kernels[identifier] = SandboxProcess(self.data_dir(identifier), self.limits)
        return kernel

    def drop(self, identifier: str) -> None:
        kernel = self.kernels.pop(identifier, None)
        if kernel is not None:
            kernel.kill()
        shutil.rmtree(self.root / identifier, ignore_errors=True)

    def execute(self, identifier: str, code: str, timeout: float) -> dict[str, Any]:
        """Run code in the identifier's interpreter: (status, stdout, stderr, result, milliseconds)."""
        started = time.monotonic()
        with self.lock(identifier):
            try:
                reply = self.kernel(identifier).request({"op": "run", "code": code}, timeout)
            except SessionLost as exc:
                self.kernels.pop(identifier, None)
                reply = {"ok": False, "stdout": "", "stderr": f"the session's interpreter died: {exc}\n", "result": ""}
            if reply is None:
                self.drop(identifier)
                reply = {"ok": False, "stdout": "", "stderr": f"execution timed out after {timeout:g} s\n", "result": ""}
        reply["ms"] = int((time.monotonic() - started) * 1000)
        return reply


def _handler(server: ACAServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: requests are recorded in `server.log` instead."""

        def _send(self, status: int, body: bytes = b"", content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
            server.log.append((self.command, urlsplit(self.path).path, status))  # before replying: the client may look at once
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode("utf-8"))

        def _route(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Authorization") != f"Bearer {server.token}":
                return self._json(401, {"error": "missing or wrong bearer token"})
            fault = server.take_fault()
            if fault is not None:
                status, retry_after = fault
                headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
                return self._send(status, b'{"error": "injected"}', headers=headers)
            identifier = query.get("identifier", "")
            if "api-version" not in query or not IDENTIFIER.match(identifier):
                return self._json(400, {"error": "api-version and a valid identifier are required"})
            server.identifiers.add(identifier)
            path = url.path
            if self.command == "POST" and path in ("/executions", "/code/execute"):
                return self._execute(identifier, json.loads(body), legacy=query["api-version"] == LEGACY_API_VERSION)
            if self.command == "POST" and path == "/files":
                name, content = _multipart_file(self.headers.get("Content-Type", ""), body)
                (server.data_dir(identifier) / name).write_bytes(content)
                return self._json(200, {"value": [{"name": name, "sizeInBytes": len(content)}]})
            match = FILE_CONTENT.match(path)
            if self.command == "GET" and match:
                target = server.root / identifier / unquote(match.group(1))
                if "/" in unquote(match.group(1)) or not target.is_file():
                    return self._json(404, {"error": "file not found"})
                return self._send(200, target.read_bytes(), "application/octet-stream")
            if self.command == "DELETE" and path == "/session":
                server.drop(identifier)
                return self._send(204)
            return self._json(404, {"error": f"no route {self.command} {path}"})

        def _execute(self, identifier: str, body: dict[str, Any], legacy: bool) -> None:
            props = body.get("properties", body) if legacy else body
            timeout = float(props.get("timeoutInSeconds", 220))
            reply = server.execute(identifier, props["code"], timeout)
            stdout, stderr = reply["stdout"][:STDOUT_CAP], reply["stderr"][:STDOUT_CAP]
            if legacy:
                status = "Success" if reply["ok"] else "Failure"
                props_out = {"status": status, "stdout": stdout, "stderr": stderr, "result": reply["result"], "executionTimeInMilliseconds": reply["ms"]}
                return self._json(200, {"properties": props_out})
            result = {"stdout": stdout, "stderr": stderr, "executionResult": reply["result"], "executionTimeInMilliseconds": reply["ms"]}
            status = "Succeeded" if reply["ok"] else "Failed"
            return self._json(200, {"id": str(uuid.uuid4()), "identifier": identifier, "status": status, "result": result})

        do_GET = do_POST = do_DELETE = _route

    return Handler


def _multipart_file(content_type: str, body: bytes) -> tuple[str, bytes]:
    """The first file part of a multipart/form-data body: (file name, bytes)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ValueError("multipart body without boundary")
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        head, _, content = part.partition(b"\r\n\r\n")
        name = re.search(rb'filename="([^"]+)"', head)
        if name:
            return Path(name.group(1).decode()).name, content.removesuffix(b"\r\n")
    raise ValueError("multipart body without a file part")
