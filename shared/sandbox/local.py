"""Local sandbox: one scrubbed, resource-limited Python process per session.

Not a VM boundary: the process runs as the same user. What it does guarantee is that
no secret from our environment reaches cell code, that a runaway cell is killed, and
that the process never outlives the service.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from shared.sandbox.base import CHILD_PATH, CellLimits, SandboxError, SessionLost, timeout_result
from shared.sandbox.runtime import CONTEXT_FILE

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
log = logging.getLogger("rlm.sandbox")
INIT_TIMEOUT_SECONDS = 300.0


def sandbox_env(home: Path) -> dict[str, str]:
    """The whole environment of a sandbox: nothing inherited, so no key can leak in."""
    return {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": str(home), "TMPDIR": str(home), "MALLOC_ARENA_MAX": "2"}


class _Spawner:
    """Starts children from one long-lived thread: PR_SET_PDEATHSIG fires when the *thread*
    that forked exits, so spawning from a pool worker could kill a healthy sandbox."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._loop, name="sandbox-spawner", daemon=True).start()

    def _loop(self) -> None:
        while True:
            job, future = self.jobs.get()
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

    def spawn(self, job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        future: Future[subprocess.Popen[bytes]] = Future()
        self.jobs.put((job, future))
        return future.result()


_spawner_lock = threading.Lock()
_spawner: _Spawner | None = None


def _get_spawner() -> _Spawner:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
        return _spawner


class SandboxProcess:
    """A runtime process in `cwd`, spoken to in JSON lines over two private pipes (never stdio)."""

    def __init__(self, cwd: Path, limits: CellLimits, python: str = sys.executable) -> None:
        self.cwd = cwd
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        argv = [
            python, "-I", str(CHILD_PATH),
            "--cmd-fd", str(cmd_r), "--res-fd", str(res_w), "--parent-pid", str(os.getpid()),
            "--memory-mb", str(limits.memory_mb), "--cpu-seconds", str(limits.cpu_seconds),
        ]  # fmt: skip
        try:
            self.proc = _get_spawner().spawn(
                lambda: subprocess.Popen(
                    argv, cwd=cwd, env=sandbox_env(cwd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, pass_fds=(cmd_r, res_w), start_new_session=True,
                )
            )  # fmt: skip
        finally:
            os.close(cmd_r)
            os.close(res_w)
        self._buffer = b""
        self.lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send one command and read its reply; None when no reply came in `timeout` seconds.

        Raises SessionLost if the process is dead before or while answering."""
        with self.lock:
            if not self.alive():
                raise SessionLost(f"sandbox process exited with code {self.proc.returncode}")
            try:
                _write_all(self._cmd_w, (json.dumps(message) + "\n").encode("utf-8"))
            except OSError as exc:
                raise SessionLost(f"sandbox process is gone ({exc})") from None
            deadline = time.monotonic() + timeout
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                ready, _, _ = select.select([self._res_r], [], [], remaining)
                if not ready:
                    continue
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    code = self.proc.wait()
                    raise SessionLost(f"sandbox process exited with code {code} while running a command", True)
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if "fail" in reply:
            raise SandboxError(f"sandbox refused {message.get('op')!r}: {reply['fail']}")
        return reply

    def kill(self) -> None:
        """SIGKILL the whole process group: cell code may have started children."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for fd in (self._cmd_w, self._res_r):
            try:
                os.close(fd)
            except OSError:
                pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LocalBackend:
    """One SandboxProcess per session, each in a fresh temp dir holding a copy of the corpus."""

    def __init__(self, limits: CellLimits, root: Path | None = None, python: str = sys.executable) -> None:
        self.limits = limits
        self.python = python
        self._own_root = root is None
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="rlm-sandbox-"))
        self.root.mkdir(parents=True, exist_ok=True)
        if self._own_root:
            weakref.finalize(self, shutil.rmtree, self.root, True)
        self._sessions: dict[str, SandboxProcess] = {}
        self._lock = threading.Lock()

    def start(self, session_id: str, context_path: Path) -> None:
        self.stop(session_id)
        cwd = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
        # A copy, not a hard link: cell code opening context.txt for writing must not corrupt the store.
        shutil.copyfile(context_path, cwd / CONTEXT_FILE)
        process = SandboxProcess(cwd, self.limits, self.python)
        with self._lock:
            self._sessions[session_id] = process
        reply = process.request({"op": "init", "output_max_chars": self.limits.output_max_chars}, INIT_TIMEOUT_SECONDS)
        if reply is None:
            self.stop(session_id)
            raise SandboxError(f"sandbox for {session_id} did not load its context in {INIT_TIMEOUT_SECONDS:g} s")
        if not reply.get("network_isolated"):
            log.warning("sandbox %s shares the host's network: this kernel refused a private network namespace", session_id)

    def process(self, session_id: str) -> SandboxProcess | None:
        with self._lock:
            return self._sessions.get(session_id)

    def _live(self, session_id: str) -> SandboxProcess:
        process = self.process(session_id)
        if process is None:
            raise SessionLost(f"no sandbox process for session {session_id}")
        return process

    def _cell(self, session_id: str, cell_id: str, message: dict[str, Any]) -> dict[str, Any]:
        process = self._live(session_id)
        message["timeout"] = self.limits.timeout_seconds
        reply = process.request(message, self.limits.timeout_seconds + self.limits.grace_seconds)
        if reply is None:
            self.stop(session_id)
            return timeout_result(cell_id, f"cell exceeded its {self.limits.timeout_seconds:g} s time limit; the sandbox was killed")
        return reply

    def execute(self, session_id: str, cell_id: str, code: str | list[str], answers: list[list[str]]) -> dict[str, Any]:
        return self._cell(session_id, cell_id, {"op": "execute", "cell_id": cell_id, "code": code, "answers": answers})

    def resume(self, session_id: str, cell_id: str, answers: dict[str, str]) -> dict[str, Any]:
        return self._cell(session_id, cell_id, {"op": "resume", "cell_id": cell_id, "answers": answers})

    def read_file(self, session_id: str, name: str) -> str:
        process = self._live(session_id)
        if "/" in name or name.startswith("."):
            raise ValueError(f"invalid session file name {name!r}")
        return (process.cwd / name).read_text(encoding="utf-8", errors="surrogatepass")

    def stop(self, session_id: str) -> None:
        with self._lock:
            process = self._sessions.pop(session_id, None)
        if process is not None:
            process.kill()
            shutil.rmtree(process.cwd, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            ids = list(self._sessions)
        for session_id in ids:
            self.stop(session_id)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
