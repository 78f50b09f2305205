"""One host per state dir: an exclusive lock held for the host's lifetime.

Two hosts on one SQLite file would each resume the other's instances and run their
activities twice. The lock is a kernel `flock`, so it goes away with the process, even
after a SIGKILL, and the next start is never blocked by a stale file.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import StartError

LOCK_FILE = "devhost.lock"


class StateDirBusy(StartError):
    """Another live host holds the state dir."""


class StateDirLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirBusy(f"another devhost (pid {holder}) is using the state dir {self.path.parent}; "
                               "stop it first or pass a different --state-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
