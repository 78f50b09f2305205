"""Azure Container Apps Dynamic Sessions backend: the runtime lives in a session's Python interpreter.

`start` uploads runtime.py and the corpus into /mnt/data and loads the runtime into the
session; each operation is a small snippet that calls it and prints one marked JSON
line. Replies longer than ACA's stdout cap are written to a file and downloaded.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from azure.core.credentials import TokenCredential

from shared.sandbox.base import RUNTIME_PATH, CellLimits, SandboxError, SessionLost, timeout_result
from shared.sandbox.runtime import CONTEXT_FILE

SCOPE = "https://dynamicsessions.io/.default"
LEGACY_API_VERSION = "2024-02-02-preview"
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.:@]{3,127}$")
MARKER = "RLM-REPLY "
RUNTIME_FILE = "rlm_runtime.py"
REPLY_FILE = "rlm-reply.json"
INLINE_REPLY_CHARS = 3000  # ACA caps stdout at 4096 characters by default
MAX_EXECUTION_SECONDS = 220
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SUCCESS = frozenset({"succeeded", "success"})

LOAD_RUNTIME = """
import importlib.util as _rlm_util, os as _rlm_os
_rlm_dir = '/mnt/data' if _rlm_os.path.isdir('/mnt/data') else _rlm_os.getcwd()
_rlm_spec = _rlm_util.spec_from_file_location('rlm_runtime', _rlm_os.path.join(_rlm_dir, {runtime!r}))
_rlm_m = _rlm_util.module_from_spec(_rlm_spec)
_rlm_spec.loader.exec_module(_rlm_m)
_rlm = _rlm_m.Repl(_rlm_dir, {context!r}, {output!r})
print({marker!r} + _rlm_m.reply_line({{'ok': True}}, _rlm_dir, {reply!r}, {inline!r}))
"""

CALL_RUNTIME = """
try:
    _rlm
except NameError:
    print({marker!r} + 'J{{"lost": true}}')
else:
    print({marker!r} + _rlm_m.reply_line(_rlm.{method}(**__import__('json').loads({args!r})), _rlm_dir, {reply!r}, {inline!r}))
"""


class ACAError(SandboxError):
    """The session pool answered with an error, or code did not run."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Execution:
    """One code execution as ACA reports it; `succeeded` False means the code failed, not the HTTP call."""

    succeeded: bool
    status: str
    stdout: str
    stderr: str
    result: str
    duration_seconds: float


def check_identifier(session_id: str) -> str:
    if not IDENTIFIER.match(session_id):
        raise ValueError(f"invalid session identifier {session_id!r}: 4-128 letters, digits, '-', '_', '.', ':' or '@'")
    return session_id


def parse_execution(body: dict[str, Any], duration: float) -> Execution:
    """Accept both the 2025-10-02-preview shape and the older `properties` shape."""
    if "properties" in body:
        props = body["properties"]
        status, stdout, stderr, result = props.get("status", ""), props.get("stdout"), props.get("stderr"), props.get("result")
    else:
        inner = body.get("result") or {}
        status, stdout, stderr, result = body.get("status", ""), inner.get("stdout"), inner.get("stderr"), inner.get("executionResult")
    return Execution(
        succeeded=str(status).lower() in SUCCESS,
        status=str(status),
        stdout=stdout or "",
        stderr=stderr or "",
        result="" if result is None else result if isinstance(result, str) else json.dumps(result),
        duration_seconds=duration,
    )


class ACABackend:
    """Sessions of one ACA session pool, reached through its data-plane REST API."""

    def __init__(
        self,
        endpoint: str,
        limits: CellLimits,
        credential: TokenCredential | None = None,
        api_version: str = "2025-10-02-preview",
        client: httpx.Client | None = None,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.limits = limits
        self.api_version = api_version
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._credential = credential
        self._client = client or httpx.Client(timeout=httpx.Timeout(30.0, read=MAX_EXECUTION_SECONDS + 40))
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()

    def _bearer(self) -> str:
        with self._token_lock:
            if self._token is None or self._token[1] - 300 < time.time():
                if self._credential is None:
                    from azure.identity import DefaultAzureCredential

                    self._credential = DefaultAzureCredential()
                token = self._credential.get_token(SCOPE)
                self._token = (token.token, float(token.expires_on))
            return self._token[0]

    def _request(self, method: str, path: str, identifier: str, **kwargs: Any) -> httpx.Response:
        """One call with retries on 429/5xx/transport errors, honouring Retry-After."""
        params = {"api-version": self.api_version, "identifier": check_identifier(identifier)}
        make_files: Callable[[], Any] | None = kwargs.pop("files", None)
        for attempt in range(1, self.max_attempts + 1):
            delay = self.backoff_seconds * 2 ** (attempt - 1)
            try:
                response = self._client.request(
                    method, f"{self.endpoint}{path}", params=params,
                    headers={"Authorization": f"Bearer {self._bearer()}"},
                    files=make_files() if make_files else None, **kwargs,
                )  # fmt: skip
            except httpx.TransportError as exc:
                if attempt == self.max_attempts:
                    raise ACAError(f"{method} {path} for {identifier} failed: {exc!r}") from exc
                time.sleep(delay)
                continue
            if response.status_code not in RETRY_STATUSES or attempt == self.max_attempts:
                return response
            time.sleep(_retry_after(response, delay))
        raise AssertionError("unreachable")

    def _checked(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.is_success:
            return response
        raise ACAError(f"{what} failed with HTTP {response.status_code}: {response.text[:500]}", response.status_code)

    def run_code(self, identifier: str, code: str, timeout_seconds: float) -> Execution:
        """Run code synchronously in the session `identifier` (created on first use by the pool)."""
        seconds = max(1, min(MAX_EXECUTION_SECONDS, math.ceil(timeout_seconds)))
        if self.api_version == LEGACY_API_VERSION:
            path, body = "/code/execute", {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code}}
        else:
            path = "/executions"
            body = {"codeInputType": "Inline", "executionType": "Synchronous", "code": code, "timeoutInSeconds": seconds}
        started = time.monotonic()
        response = self._checked(self._request("POST", path, identifier, json=body), f"code execution in {identifier}")
        return parse_execution(response.json(), time.monotonic() - started)

    def upload(self, identifier: str, name: str, source: Path | bytes) -> None:
        """Upload into /mnt/data (at most 128 MB per file)."""

        def files() -> dict[str, Any]:
            content = source.open("rb") if isinstance(source, Path) else source
            return {"file": (name, content, "application/octet-stream")}

        self._checked(self._request("POST", "/files", identifier, files=files), f"upload of {name} to {identifier}")

    def download(self, identifier: str, name: str) -> bytes:
        response = self._request("GET", f"/files/{name}/content", identifier)
        if response.status_code == 404:
            raise FileNotFoundError(f"{name} is not in session {identifier}")
        return self._checked(response, f"download of {name} from {identifier}").content

    def delete_session(self, identifier: str) -> None:
        response = self._request("DELETE", "/session", identifier)
        if response.status_code != 404:
            self._checked(response, f"deleting session {identifier}")

    def start(self, session_id: str, context_path: Path) -> None:
        self.upload(session_id, RUNTIME_FILE, RUNTIME_PATH.read_bytes())
        self.upload(session_id, CONTEXT_FILE, context_path)
        code = LOAD_RUNTIME.format(
            runtime=RUNTIME_FILE, context=CONTEXT_FILE, output=self.limits.output_max_chars,
            marker=MARKER, reply=REPLY_FILE, inline=INLINE_REPLY_CHARS,
        )  # fmt: skip
        execution = self.run_code(session_id, code, MAX_EXECUTION_SECONDS)
        if not execution.succeeded:
            raise ACAError(f"loading the runtime into {session_id} failed ({execution.status}): {execution.stderr[-2000:]}")
        self._reply(session_id, execution)

    def _call(self, session_id: str, cell_id: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
        cell_seconds = min(self.limits.timeout_seconds, MAX_EXECUTION_SECONDS - self.limits.grace_seconds)
        args["timeout"] = cell_seconds
        code = CALL_RUNTIME.format(
            method=method, args=json.dumps(args), marker=MARKER, reply=REPLY_FILE, inline=INLINE_REPLY_CHARS
        )
        execution = self.run_code(session_id, code, cell_seconds + self.limits.grace_seconds)
        if not execution.succeeded:
            if execution.duration_seconds >= cell_seconds:
                self.stop(session_id)
                return timeout_result(cell_id, f"cell exceeded its {cell_seconds:g} s time limit; the session was deleted")
            raise SessionLost(f"session {session_id} failed while running a cell ({execution.status}): {execution.stderr[-500:]}", True)
        reply = self._reply(session_id, execution)
        if reply.get("lost"):
            raise SessionLost(f"session {session_id} no longer holds the runtime")
        return reply

    def _reply(self, session_id: str, execution: Execution) -> dict[str, Any]:
        lines = [line for line in execution.stdout.splitlines() if line.startswith(MARKER)]
        if not lines:
            raise ACAError(f"no reply from the runtime in {session_id}: {execution.stdout[-500:]!r} {execution.stderr[-500:]!r}")
        payload = lines[-1][len(MARKER) :]
        if payload.startswith("F"):
            payload = self.download(session_id, payload[1:]).decode("utf-8")
        else:
            payload = payload[1:]
        return json.loads(payload)

    def execute(self, session_id: str, cell_id: str, code: str | list[str], answers: list[list[str]]) -> dict[str, Any]:
        return self._call(session_id, cell_id, "execute", {"cell_id": cell_id, "code": code, "answers": answers})

    def resume(self, session_id: str, cell_id: str, answers: dict[str, str]) -> dict[str, Any]:
        return self._call(session_id, cell_id, "resume", {"cell_id": cell_id, "answers": answers})

    def read_file(self, session_id: str, name: str) -> str:
        return self.download(session_id, name).decode("utf-8", errors="surrogatepass")

    def stop(self, session_id: str) -> None:
        self.delete_session(session_id)

    def park(self, session_id: str) -> None:
        """Nothing to free here: the pool's cooldown ends idle sessions, and another worker may be using this one."""

    def close(self) -> None:
        self._client.close()


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", default)), 0.0), 60.0)
    except ValueError:
        return default
