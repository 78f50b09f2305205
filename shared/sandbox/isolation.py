"""What confines a local sandbox process: bubblewrap namespaces and a session cgroup.

bubblewrap (`bwrap`) gives each session its own mount, pid, ipc, net, uts and user
namespaces with no capabilities: the filesystem holds a read-only Python runtime, the
two runtime files, the session directory (the only writable path) and the corpus bound
read-only into it; the session is init of its pid namespace, so every process it starts
dies with it. The session cgroup (shared.sandbox.cgroups) caps memory and process count
for the session as a whole. Without either, the host refuses to start a local sandbox
unless RLM_SANDBOX_WEAK_ISOLATION=1 asks for the weaker mode, which is logged loudly.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shared.sandbox.base import CHILD_PATH, RUNTIME_PATH, SandboxError
from shared.sandbox.cgroups import Cgroups, CgroupsUnavailable
from shared.sandbox.runtime import CONTEXT_FILE

log = logging.getLogger("rlm.sandbox")

SESSION_DIR = "/mnt/data"  # the same path as in an ACA session
RUNTIME_DIR = "/opt/rlm"
SANDBOX_UID = 65534
TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
PROBE_TIMEOUT_SECONDS = 60.0
INSTALL_HINT = (
    "Install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`) and allow "
    "user namespaces, or set RLM_SANDBOX_WEAK_ISOLATION=1 to run generated code with weaker isolation "
    "(it can then read your files)."
)


class SandboxUnavailable(SandboxError):
    """This host cannot confine a local sandbox, and the weaker mode was not asked for."""


@dataclass(frozen=True)
class Isolation:
    """What this host confines a sandbox with; `missing` says what it lacks (only in the weak mode)."""

    bwrap: str | None
    cgroups: Cgroups | None
    missing: tuple[str, ...] = ()

    @property
    def python(self) -> str:
        """The interpreter inside the sandbox: the base one, a venv's python is a symlink out of reach."""
        return os.path.realpath(getattr(sys, "_base_executable", sys.executable))

    @property
    def child_path(self) -> str:
        return f"{RUNTIME_DIR}/{CHILD_PATH.name}" if self.bwrap else str(CHILD_PATH)


def bwrap_arguments(session_dir: Path, context: Path | None) -> list[str]:
    """Namespaces, no capabilities, and a filesystem of read-only runtime plus one writable session dir."""
    args = [
        "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
    ]  # fmt: skip
    for path in runtime_paths():
        args += ["--ro-bind", path, path]
    for name in TOP_LEVEL_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir() and not any(str(host) == p or str(host).startswith(p + "/") for p in runtime_paths()):
            args += ["--ro-bind", str(host), str(host)]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for source in (CHILD_PATH, RUNTIME_PATH):
        args += ["--ro-bind", str(source), f"{RUNTIME_DIR}/{source.name}"]
    args += ["--bind", str(session_dir), SESSION_DIR]
    if context is not None:
        args += ["--ro-bind", str(context), f"{SESSION_DIR}/{CONTEXT_FILE}"]
    return [*args, "--remount-ro", "/", "--chdir", SESSION_DIR]


@lru_cache(maxsize=1)
def runtime_paths() -> tuple[str, ...]:
    """The host directories the interpreter needs (read-only): /usr and Python's own prefix."""
    interpreter = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    candidates = ["/usr", sys.base_prefix, sys.base_exec_prefix, sysconfig.get_paths()["stdlib"], os.path.dirname(interpreter)]
    chosen: list[str] = []
    for path in sorted({os.path.realpath(c) for c in candidates}, key=len):
        if os.path.isdir(path) and not any(path == p or path.startswith(p + "/") for p in chosen):
            chosen.append(path)
    return tuple(chosen)


@lru_cache(maxsize=2)
def detect_isolation(allow_weak: bool) -> Isolation:
    """Probe once per process: a real sandbox must start, and a session cgroup must be creatable."""
    missing = []
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        missing.append("bubblewrap (bwrap) is not installed, so generated code sees the host's files, processes and sockets")
    else:
        problem = _probe_bwrap(bwrap)
        if problem:
            missing.append(f"bubblewrap cannot create its namespaces here ({problem})")
            bwrap = None
    try:
        cgroups: Cgroups | None = Cgroups.detect()
    except (CgroupsUnavailable, OSError) as exc:
        missing.append(f"no writable cgroup for the session-wide memory and process limits ({exc})")
        cgroups = None
    if missing and not allow_weak:
        raise SandboxUnavailable("The local sandbox cannot isolate generated code on this host: " + "; ".join(missing) + ". " + INSTALL_HINT)
    if missing:
        log.warning(
            "RLM_SANDBOX_WEAK_ISOLATION=1: running generated code WITHOUT full isolation. Missing: %s. "
            "Do not run untrusted corpora or models this way.", "; ".join(missing),
        )  # fmt: skip
    else:
        log.info("local sandbox: bubblewrap %s, cgroup v%d session limits", bwrap, cgroups.version if cgroups else 0)
    return Isolation(bwrap, cgroups, tuple(missing))


def _probe_bwrap(bwrap: str) -> str | None:
    """None when a trivial sandbox runs, else bwrap's complaint."""
    with tempfile.TemporaryDirectory(prefix="rlm-bwrap-probe-") as tmp:
        argv = [bwrap, *bwrap_arguments(Path(tmp), None), "--", Isolation(bwrap, None).python, "-I", "-c", "pass"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit code {done.returncode}")
