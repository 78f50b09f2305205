"""Peak resident memory of a whole process tree, sampled from /proc (Linux).

The bench makes itself a child subreaper, so a process that leaves its parent (a daemonized
helper) is re-parented to the bench rather than to init and is still counted, and can be ended
afterwards by its pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
SAMPLE_SECONDS = 0.05


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process we can read."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: fields resume after the last ")".
        fields = stat[stat.rindex(b")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    """Every process below `root` (not `root` itself)."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0  # gone between listing and reading


def command_line(pid: int, limit: int = 80) -> str:
    """The program's name and first arguments, e.g. `python -m bench.peer_ours`."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [os.path.basename(argv[0].decode(errors="replace"))] + [a.decode(errors="replace") for a in argv[1:3] if a]
    return " ".join(words)[:limit]


class TreePeak:
    """The largest sum of RSS over the processes below the bench, seen while sampling, and
    which processes held it."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self.processes = 0
        self.at_peak: list[tuple[str, float]] = []  # (command, MB), largest first

    def sample(self) -> None:
        sizes = {pid: rss_bytes(pid) for pid in descendants(os.getpid())}
        self.processes = max(self.processes, len(sizes))
        total = sum(sizes.values())
        if total > self.peak_bytes:
            self.peak_bytes = total
            largest = sorted(sizes.items(), key=lambda item: -item[1])
            self.at_peak = [(command_line(pid), size / 1e6) for pid, size in largest if size]

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 1e6


@contextmanager
def sampling() -> Iterator[TreePeak]:
    """Sample the bench's process tree in a thread until the block ends."""
    peak = TreePeak()
    done = threading.Event()

    def loop() -> None:
        while not done.wait(SAMPLE_SECONDS):
            peak.sample()

    thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def end_leftovers(grace_seconds: float = 5.0) -> list[int]:
    """Kill what a finished driver left behind below the bench, by pid, and reap it; returns the pids."""
    left = descendants(os.getpid())
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_seconds
    while descendants(os.getpid()) and time.monotonic() < deadline:
        _reap()
        time.sleep(SAMPLE_SECONDS)
    _reap()
    return left
