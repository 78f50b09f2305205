"""Copilot sessions opened ahead of need.

The Copilot CLI spends some 20 ms of its CPU creating a session, and every call is a fresh
session whose system prompt is fixed at creation. When a call's system prompt is known
before the call is made (a query's first call is known as soon as its corpus is), its
session can be opened while other work runs (the sandbox starting), and the call finds it
open. Sub-queries often share a first prompt (one question over equal-sized chunks), so a
prompt may have several sessions waiting, one per call to come. A session nobody claims
(its call ran on another worker, or never came) is closed after `ttl` seconds, and at most
`limit` wait at once, so a burst cannot pile sessions up in the CLI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Session = TypeVar("Session")
Key = tuple[str, str]  # (model, system prompt)


@dataclass
class _Waiting(Generic[Session]):
    opening: asyncio.Task[Session]
    expiry: asyncio.TimerHandle


class SessionsAhead(Generic[Session]):
    """Sessions being opened or open, by (model, system prompt), each claimed at most once."""

    def __init__(self, close: Callable[[Session], None], *, ttl: float, limit: int) -> None:
        self._close = close
        self.ttl = ttl
        self.limit = limit
        self._waiting: dict[Key, list[_Waiting[Session]]] = {}

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._waiting.values())

    def open(self, key: Key, opening: Callable[[], Coroutine[Any, Any, Session]]) -> bool:
        """Start opening a session for a call that will come with `key`, unless too many wait."""
        if len(self) >= self.limit:
            return False
        loop = asyncio.get_running_loop()
        entry: _Waiting[Session] = _Waiting(loop.create_task(opening()), loop.call_later(self.ttl, lambda: self._expire(key, entry)))
        self._waiting.setdefault(key, []).append(entry)
        return True

    def claim(self, key: Key) -> asyncio.Task[Session] | None:
        """The task opening a session for `key`, now the caller's; None if there is none."""
        entries = self._waiting.get(key)
        if not entries:
            return None
        entry = entries.pop(0)
        if not entries:
            del self._waiting[key]
        entry.expiry.cancel()
        return entry.opening

    def _expire(self, key: Key, entry: _Waiting[Session]) -> None:
        entries = self._waiting.get(key, [])
        if entry in entries:
            entries.remove(entry)
            if not entries:
                del self._waiting[key]
            log.debug("closing a Copilot session opened ahead of a call that did not come (%s)", key[0])
            entry.opening.add_done_callback(self._close_when_open)

    def _close_when_open(self, task: asyncio.Task[Session]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._close(task.result())

    async def close_all(self) -> None:
        """Close every unclaimed session (when the CLI is about to stop)."""
        entries = [entry for waiting in self._waiting.values() for entry in waiting]
        self._waiting.clear()
        for entry in entries:
            entry.expiry.cancel()
        for opened in await asyncio.gather(*(entry.opening for entry in entries), return_exceptions=True):
            if not isinstance(opened, BaseException):
                self._close(opened)
