"""Local storage queues feeding queue triggers, with Azure's retry and poison rules.

host.json's `extensions.queues` applies: at most batchSize + newBatchThreshold messages
of one queue run at once, a failed message becomes visible again after
visibilityTimeout, and after maxDequeueCount attempts it moves to `{queue}-poison`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from dateutil.parser import isoparse

from .config import QueueSettings
from .functions import QueueFunction
from .history import fmt_time, utcnow
from .invocation import QueueMessageData
from .state import QueueMessage, StateStore

log = logging.getLogger("devhost.queues")
POISON_SUFFIX = "-poison"
#: Delivers one message to its function; returns an error text, or None on success.
Deliver = Callable[[QueueFunction, QueueMessageData], Awaitable[str | None]]


class QueuePump:
    """Delivers persisted messages to bound functions; failures retry, then go to poison."""

    def __init__(self, store: StateStore, functions: dict[str, QueueFunction], settings: QueueSettings,
                 deliver: Deliver) -> None:
        self.store = store
        self.functions = functions
        self.settings = settings
        self._deliver_to = deliver
        self._wake = asyncio.Event()
        self._in_flight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pump: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._pump = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        pending = list(self._tasks) + ([self._pump] if self._pump else [])
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def enqueue(self, queue_name: str, body: str) -> int:
        message_id = self.store.enqueue(queue_name, body, fmt_time(utcnow()))
        self._wake.set()
        return message_id

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = utcnow()
            busy: dict[str, int] = {}
            next_visible: float | None = None
            messages = self.store.queue_messages()
            for message in messages:
                if message.id in self._in_flight:
                    busy[message.queue] = busy.get(message.queue, 0) + 1
            for message in messages:
                if message.queue not in self.functions or message.id in self._in_flight:
                    continue
                if message.visible_at and isoparse(message.visible_at) > now:
                    wait = (isoparse(message.visible_at) - now).total_seconds()
                    next_visible = wait if next_visible is None else min(next_visible, wait)
                    continue
                if busy.get(message.queue, 0) >= self.settings.concurrency:
                    continue
                busy[message.queue] = busy.get(message.queue, 0) + 1
                self._in_flight.add(message.id)
                task = asyncio.get_running_loop().create_task(self._deliver(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            try:
                await asyncio.wait_for(self._wake.wait(), next_visible)
            except TimeoutError:
                pass

    async def _deliver(self, message: QueueMessage) -> None:
        """One delivery attempt: the dequeue count is persisted before the call."""
        function = self.functions[message.queue]
        self.store.bump_dequeue(message.id)
        count = message.dequeue_count + 1
        data = QueueMessageData(id=str(message.id), body=message.body, dequeue_count=count,
                                inserted=isoparse(message.inserted))
        try:
            error = await self._deliver_to(function, data)
            if error is None:
                self.store.delete_message(message.id)
                return
            log.error("Queue function '%s' failed on message %s (attempt %d): %s",
                      function.name, message.id, count, error)
            if count >= self.settings.max_dequeue_count:
                self.store.move_message(message.id, message.queue + POISON_SUFFIX)
            elif self.settings.visibility_timeout > timedelta(0):
                self.store.hide_message(message.id, fmt_time(utcnow() + self.settings.visibility_timeout))
        finally:
            self._in_flight.discard(message.id)
            self._wake.set()
