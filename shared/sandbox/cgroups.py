"""Session cgroups: one memory cap and one process count for a sandbox session as a whole.

A memory rlimit holds per process, so a cell that forks escapes it; a cgroup counts every
process of the session together. Session cgroups are children of this process's own
cgroup where it can hand its memory and pids controllers down (cgroup v2: it holds no
process or is the root, as in a container's cgroup namespace; cgroup v1 on hybrid hosts:
always), so they stay inside whatever limits the host already has; else, on cgroup v2
and where permitted (root), children of the hierarchy's root. Where none can be
written, `CgroupsUnavailable` says why.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("rlm.sandbox")
PREFIX = "rlm-sandbox-"
REMOVE_SECONDS = 10.0
CONTROLLERS = ("memory", "pids")


class CgroupsUnavailable(RuntimeError):
    """This process cannot create cgroups with the memory and pids controllers."""


@dataclass(frozen=True)
class SessionCgroup:
    """The cgroup directories of one session: one on cgroup v2, a memory and a pids one on v1."""

    dirs: tuple[Path, ...]
    version: int

    @property
    def procs_files(self) -> list[Path]:
        """Where a process writes its pid to join the session (every hierarchy)."""
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs_files:
            try:
                found.update(int(line) for line in path.read_text().split())
            except FileNotFoundError:
                continue
        return found

    def limit_hits(self) -> int:
        """How many forks (or new threads) pids.max has refused in this session."""
        try:
            events = dict(line.split() for line in (self.dirs[-1] / "pids.events").read_text().splitlines())
            return int(events.get("max", 0))
        except (FileNotFoundError, ValueError):
            return 0

    def memory_peak_bytes(self) -> int:
        """The session's memory high-water mark, every process together."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        return int((self.dirs[0] / name).read_text())

    def remove(self) -> None:
        """Kill whatever is left in the session and delete its cgroups."""
        deadline = time.monotonic() + REMOVE_SECONDS
        while True:
            pids = self.pids()
            for pid in pids:
                _kill_member(pid, self.procs_files[0])
            if not pids and self._rmdir():
                return
            if time.monotonic() > deadline:
                log.warning("sandbox cgroup %s still holds processes %s; left for the next sweep", self.dirs[0], sorted(pids))
                return
            time.sleep(0.02)

    def _rmdir(self) -> bool:
        for directory in self.dirs:
            try:
                directory.rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    return False
                raise
        return True


def _kill_member(pid: int, procs: Path) -> None:
    """SIGKILL `pid` only if it is still a member: a pidfd pins the process, so a recycled pid is never hit."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if str(pid) in procs.read_text().split():
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except (ProcessLookupError, FileNotFoundError):
        pass
    finally:
        os.close(pidfd)


@dataclass(frozen=True)
class _Mount:
    root: str
    point: Path
    fstype: str
    options: frozenset[str]


def _mounts() -> list[_Mount]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            mounts.append(_Mount(fields[3], Path(fields[4]), tail[0], frozenset(tail[2].split(","))))
    return mounts


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy: "" for v2, else each v1 controller name."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _inside(mount: _Mount, path: str) -> Path | None:
    if mount.root == "/":
        return mount.point / path.lstrip("/")
    if path == mount.root or path.startswith(mount.root.rstrip("/") + "/"):
        return mount.point / path[len(mount.root) :].lstrip("/")
    return None


class Cgroups:
    """Creates session cgroups under this process's own cgroup(s)."""

    def __init__(self, parents: tuple[Path, ...], version: int) -> None:
        self.parents = parents
        self.version = version
        self._names = itertools.count()
        self._sweep()

    @classmethod
    def detect(cls) -> Cgroups:
        """The first of cgroup v2 and v1 where a session cgroup can really be created and limited."""
        paths, mounts = _own_paths(), _mounts()
        reasons = []
        v2 = next((m for m in mounts if m.fstype == "cgroup2"), None)
        own = _inside(v2, paths[""]) if v2 is not None and "" in paths else None
        if v2 is None or own is None:
            reasons.append("no cgroup v2 hierarchy")
        # Our own cgroup can delegate only if it holds no process (v2's rule) or is the root;
        # else, where we may (root), the hierarchy's root, which always can.
        for parent in dict.fromkeys([own, v2.point if v2 is not None else None]):
            if parent is None:
                continue
            try:
                _delegate(parent)
                return cls._probed((parent,), 2)
            except OSError as exc:
                reasons.append(f"cgroup v2 at {parent}: {exc.strerror or exc}")
        v1 = []
        for controller in CONTROLLERS:
            mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
            directory = _inside(mount, paths[controller]) if mount is not None and controller in paths else None
            if directory is None:
                reasons.append(f"no cgroup v1 {controller} hierarchy")
                break
            v1.append(directory)
        else:
            try:
                return cls._probed(tuple(v1), 1)
            except OSError as exc:
                reasons.append(f"cgroup v1 under {v1[0]}: {exc.strerror or exc}")
        raise CgroupsUnavailable("; ".join(reasons))

    @classmethod
    def _probed(cls, parents: tuple[Path, ...], version: int) -> Cgroups:
        cgroups = cls(parents, version)
        cgroups.create(64 << 20, 8).remove()
        return cgroups

    def create(self, memory_bytes: int, max_processes: int) -> SessionCgroup:
        """A new, empty session cgroup with its limits set (raises OSError if it cannot be)."""
        name = f"{PREFIX}{os.getpid()}-{next(self._names)}"
        group = SessionCgroup(tuple(parent / name for parent in self.parents), self.version)
        try:
            for directory in group.dirs:
                directory.mkdir()
            if self.version == 2:
                (group.dirs[0] / "memory.max").write_text(str(memory_bytes))
                _write_if_present(group.dirs[0] / "memory.swap.max", "0")
                (group.dirs[0] / "pids.max").write_text(str(max_processes))
            else:
                memory, pids = group.dirs
                (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
                _write_if_present(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
                (pids / "pids.max").write_text(str(max_processes))
        except OSError:
            group.remove()
            raise
        return group

    def _sweep(self) -> None:
        """Delete empty session cgroups left by a host process that no longer exists."""
        for parent in self.parents:
            for stale in parent.glob(f"{PREFIX}*"):
                owner = stale.name[len(PREFIX) :].split("-", 1)[0]
                if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                    try:
                        stale.rmdir()
                    except OSError:
                        pass


def _delegate(own: Path) -> None:
    """Make sure children of `own` get the memory and pids controllers (raises OSError if not)."""
    available = (own / "cgroup.controllers").read_text().split()
    missing = [c for c in CONTROLLERS if c not in available]
    if missing:
        raise OSError(errno.ENOTSUP, f"controllers {', '.join(missing)} are not available")
    enabled = (own / "cgroup.subtree_control").read_text().split()
    wanted = " ".join(f"+{c}" for c in CONTROLLERS if c not in enabled)
    if wanted:
        (own / "cgroup.subtree_control").write_text(wanted)


def _write_if_present(path: Path, value: str) -> None:
    if path.exists():
        path.write_text(value)
