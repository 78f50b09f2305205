"""Local sandbox: one confined Python process per session (shared.sandbox.isolation says how).

Not a VM boundary: the sandbox shares the host's kernel. What it guarantees is that no
secret from our environment or files reaches cell code, that cell code sees no host
process, socket or network, that a runaway session is bounded and killed, and that
nothing it starts outlives it.
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
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from shared.sandbox.base import CellLimits, SandboxError, SessionLost, timeout_result
from shared.sandbox.cgroups import SessionCgroup
from shared.sandbox.isolation import SESSION_DIR, Isolation, bwrap_arguments, detect_isolation
from shared.sandbox.runtime import CONTEXT_FILE

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
SHELL = "/bin/sh"
# Join every session cgroup named before `--`, then become the command after it.
JOIN_CGROUPS_THEN_EXEC = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 70; shift; done; shift; exec "$@"'

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
    """A runtime process confined to `cwd`, spoken to in JSON lines over two private pipes (never stdio).

    With bubblewrap, `cwd` is the sandbox's /mnt/data and `context` (if given) is bound
    read-only into it as context.txt; the process joins a fresh session cgroup before
    bwrap runs, so every process it ever starts counts against the session's limits.
    """

    def __init__(self, cwd: Path, limits: CellLimits, isolation: Isolation | None = None, context: Path | None = None) -> None:
        self.cwd = cwd
        isolation = isolation or detect_isolation(allow_weak=False)
        self.cgroup: SessionCgroup | None = None
        if isolation.cgroups is not None:
            self.cgroup = isolation.cgroups.create(limits.memory_mb << 20, limits.max_processes)
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        inherited = [cmd_r, res_w]
        try:
            argv = [
                isolation.python, "-I", isolation.child_path, "--cmd-fd", str(cmd_r), "--res-fd", str(res_w),
                "--memory-mb", str(limits.memory_mb), "--cpu-seconds", str(limits.cpu_seconds),
                "--file-mb", str(limits.max_file_mb),
            ]  # fmt: skip
            argv = self._confined(argv, isolation, context, inherited)
            home = Path(SESSION_DIR) if isolation.bwrap is not None else cwd
            self.proc = _get_spawner().spawn(
                lambda: subprocess.Popen(
                    argv, cwd=cwd, env=sandbox_env(home), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, pass_fds=inherited, start_new_session=True,
                )
            )  # fmt: skip
        except BaseException:
            for fd in (self._cmd_w, self._res_r):
                os.close(fd)
            if self.cgroup is not None:
                self.cgroup.remove()
            raise
        finally:
            for fd in inherited:
                os.close(fd)
        self._buffer = b""
        self.lock = threading.Lock()

    def _confined(self, argv: list[str], isolation: Isolation, context: Path | None, inherited: list[int]) -> list[str]:
        """`argv` inside bwrap (its arguments passed on a pipe, so /proc shows no host path),
        started by a shell that first joins the session cgroup."""
        if isolation.bwrap is not None:
            args_r, args_w = os.pipe()
            inherited.append(args_r)
            _write_all(args_w, "".join(f"{arg}\0" for arg in bwrap_arguments(self.cwd, context)).encode())
            os.close(args_w)
            argv = [isolation.bwrap, "--args", str(args_r), "--", *argv]
        else:
            argv = [*argv, "--parent-pid", str(os.getpid()), "--unshare-net", "1"]
        if self.cgroup is not None:
            argv = [SHELL, "-c", JOIN_CGROUPS_THEN_EXEC, "sh", *map(str, self.cgroup.procs_files), "--", *argv]
        return argv

    @property
    def pid(self) -> int:
        """The host pid of the outermost process (bwrap, or the runtime itself in the weak mode)."""
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def forks_refused(self) -> int:
        """How often the session's process limit has turned a fork or thread away."""
        return self.cgroup.limit_hits() if self.cgroup is not None else 0

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send one command and read its reply; None when no reply came in `timeout` seconds.

        Raises SessionLost if the process is dead before or while answering, or answers
        with something that is not a reply (cell code can write to the pipe)."""
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
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            self.kill()
            raise SessionLost("the sandbox answered with something that is not a reply", True)
        if "fail" in reply:
            raise SandboxError(f"sandbox refused {message.get('op')!r}: {reply['fail']}")
        return reply

    def kill(self) -> None:
        """SIGKILL the sandbox; its pid namespace and cgroup take every descendant with it."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        if self.cgroup is not None:
            self.cgroup.remove()
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
    """One SandboxProcess per session, each in a fresh session dir under `root`.

    The host's isolation is probed on the first start: without bubblewrap or a writable
    cgroup, starting refuses (SandboxUnavailable) unless `allow_weak`.
    """

    def __init__(self, limits: CellLimits, root: Path | None = None, allow_weak: bool = False) -> None:
        self.limits = limits
        self.allow_weak = allow_weak
        self._own_root = root is None
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="rlm-sandbox-"))
        self.root.mkdir(parents=True, exist_ok=True)
        if self._own_root:
            weakref.finalize(self, shutil.rmtree, self.root, True)
        self._sessions: dict[str, SandboxProcess] = {}
        self._lock = threading.Lock()
        self.peak_sessions = 0

    def start(self, session_id: str, context_path: Path) -> None:
        self.stop(session_id)
        isolation = detect_isolation(self.allow_weak)
        cwd = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
        if isolation.bwrap is None:
            # Nothing stops cell code writing context.txt here: a copy keeps the store intact.
            shutil.copyfile(context_path, cwd / CONTEXT_FILE)
        try:
            process = SandboxProcess(cwd, self.limits, isolation, context=context_path if isolation.bwrap else None)
        except BaseException:
            shutil.rmtree(cwd, ignore_errors=True)
            raise
        with self._lock:
            self._sessions[session_id] = process
            self.peak_sessions = max(self.peak_sessions, len(self._sessions))
        reply = process.request({"op": "init", "output_max_chars": self.limits.output_max_chars}, INIT_TIMEOUT_SECONDS)
        if reply is None:
            self.stop(session_id)
            raise SandboxError(f"sandbox for {session_id} did not load its context in {INIT_TIMEOUT_SECONDS:g} s")
        if reply.get("network_isolated") is False:
            log.warning("sandbox %s shares the host's network: this kernel refused a private network namespace", session_id)

    def process(self, session_id: str) -> SandboxProcess | None:
        with self._lock:
            return self._sessions.get(session_id)

    @property
    def live_sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _live(self, session_id: str) -> SandboxProcess:
        process = self.process(session_id)
        if process is None:
            raise SessionLost(f"no sandbox process for session {session_id}")
        return process

    def _cell(self, session_id: str, cell_id: str, message: dict[str, Any]) -> dict[str, Any]:
        process = self._live(session_id)
        message["timeout"] = self.limits.timeout_seconds
        refused_before = process.forks_refused()
        reply = process.request(message, self.limits.timeout_seconds + self.limits.grace_seconds)
        if reply is None:
            self.stop(session_id)
            return timeout_result(cell_id, f"cell exceeded its {self.limits.timeout_seconds:g} s time limit; the sandbox was killed")
        if "lost" in reply:
            self.stop(session_id)
            raise SessionLost(reply["lost"])
        if reply.get("status") in ("done", "error") and process.forks_refused() > refused_before:
            # What it left behind (a fork bomb's children) would leave no room for the next cell.
            self.stop(session_id)
            note = f"this cell ran into its session's limit of {self.limits.max_processes} processes; the sandbox was killed"
            reply |= {"status": "error", "error": note, "stderr": f"{reply.get('stderr', '')}{note}\n", "restart": True}
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

    def park(self, session_id: str) -> None:
        self.stop(session_id)

    def close(self) -> None:
        with self._lock:
            ids = list(self._sessions)
        for session_id in ids:
            self.stop(session_id)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
