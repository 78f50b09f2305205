"""At most N live sandbox sessions in this worker process; beyond that, opening one waits.

A session whose cell waits on sub-queries keeps its slot, so a plain semaphore deadlocks
as soon as every slot is held by a parent whose children wait for one. Each request
therefore names its height, how many levels of sessions may still open below it
(max_depth - depth), and is granted only while more than `height` slots stay free.
Then whichever holders have the smallest height h always leave h slots free, enough for
one of their children (height h - 1) to start: some branch can always go down to a
leaf, finish, and hand its slot on. Waiters are served lowest height first, so work
that finishes trees goes before work that starts new ones.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.sandbox.base import SandboxError


class TreeTooDeep(SandboxError):
    """A query whose recursion needs more live sandboxes at once than this host allows."""


@dataclass
class _Waiter:
    session_id: str
    tree_id: str
    height: int
    order: int
    wake: Callable[[BaseException | None], None] = field(repr=False)


class SandboxSlots:
    """Slots keyed by session id: taking one twice is a no-op, releasing an unknown one too."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.peak = 0
        self._held: set[str] = set()
        self._waiters: list[_Waiter] = []
        self._lock = threading.Lock()
        self._order = itertools.count()

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    def holds(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._held

    async def acquire(self, session_id: str, tree_id: str, height: int) -> None:
        """Wait without blocking a thread: waiting activities must not starve the ones holding slots."""
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()

        def wake(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, granted, error)

        waiter = self._enqueue(session_id, tree_id, height, wake)
        if waiter is None:
            return
        try:
            await granted
        except asyncio.CancelledError:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                    raise
            self.release(session_id)
            raise

    def acquire_blocking(self, session_id: str, tree_id: str, height: int) -> None:
        """The same for callers on their own threads (direct library use)."""
        done = threading.Event()
        failure: list[BaseException] = []

        def wake(error: BaseException | None) -> None:
            failure.extend([error] if error else [])
            done.set()

        if self._enqueue(session_id, tree_id, height, wake) is not None:
            done.wait()
            if failure:
                raise failure[0]

    def release(self, session_id: str) -> None:
        with self._lock:
            self._held.discard(session_id)
            self._grant()

    def cancel_tree(self, tree_id: str, error: BaseException) -> None:
        """Waiters of a closed tree stop waiting with `error`."""
        with self._lock:
            leaving = [w for w in self._waiters if w.tree_id == tree_id]
            self._waiters = [w for w in self._waiters if w.tree_id != tree_id]
        for waiter in leaving:
            waiter.wake(error)

    def check(self, height: int) -> None:
        """Refuse a session that could never get its slot: its tree, `height` levels below it, could not all live at once."""
        if self.limit is not None and height >= self.limit:
            raise TreeTooDeep(
                f"this query recurses {height} levels below its root, so it needs {height + 1} live sandboxes at once, "
                f"but RLM_MAX_LIVE_SANDBOXES is {self.limit}: lower max_depth or raise the setting"
            )

    def _enqueue(self, session_id: str, tree_id: str, height: int, wake: Callable[[BaseException | None], None]) -> _Waiter | None:
        """Take the slot now (None) or queue a waiter."""
        self.check(height)
        with self._lock:
            if self._take(session_id, height):
                return None
            waiter = _Waiter(session_id, tree_id, height, next(self._order), wake)
            self._waiters.append(waiter)
            return waiter

    def _take(self, session_id: str, height: int) -> bool:
        if session_id in self._held:
            return True
        if self.limit is not None and self.limit - len(self._held) <= height:
            return False
        self._held.add(session_id)
        self.peak = max(self.peak, len(self._held))
        return True

    def _grant(self) -> None:
        """Under the lock: wake every waiter that now fits, lowest height first."""
        for waiter in sorted(self._waiters, key=lambda w: (w.height, w.order)):
            if self._take(waiter.session_id, waiter.height):
                self._waiters.remove(waiter)
                waiter.wake(None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
