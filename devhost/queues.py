"""Local storage queues feeding queue triggers, with Azure's retry and poison rules."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from azure.functions.queue import QueueMessage as FuncQueueMessage
from dateutil.parser import isoparse

from .history import fmt_time, utcnow
from .state import QueueMessage
from .triggers import invoke

if TYPE_CHECKING:
    from .host import EmbeddedHost

log = logging.getLogger("devhost.queues")
POISON_SUFFIX = "-poison"


class QueuePump:
    """Delivers persisted messages to bound functions; failures retry, then go to poison."""

    def __init__(self, host: EmbeddedHost, max_dequeue_count: int = 5) -> None:
        self.host = host
        self.max_dequeue_count = max_dequeue_count
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
        message_id = self.host.store.enqueue(queue_name, body, fmt_time(utcnow()))
        self._wake.set()
        return message_id

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            for message in self.host.store.queue_messages():
                if message.queue in self.host.index.queues and message.id not in self._in_flight:
                    self._in_flight.add(message.id)
                    task = asyncio.get_running_loop().create_task(self._deliver(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            await self._wake.wait()

    async def _deliver(self, message: QueueMessage) -> None:
        """One delivery attempt: the dequeue count is persisted before the call."""
        function = self.host.index.queues[message.queue]
        self.host.store.bump_dequeue(message.id)
        count = message.dequeue_count + 1
        trigger = FuncQueueMessage(id=str(message.id), body=message.body.encode(),
                                   dequeue_count=count, pop_receipt=str(count),
                                   insertion_time=isoparse(message.inserted))
        try:
            await invoke(self.host, function, trigger)
        except Exception:  # noqa: BLE001 - a failing function leaves the message queued
            log.exception("Queue function '%s' failed on message %s (attempt %d)",
                          function.name, message.id, count)
            if count >= self.max_dequeue_count:
                self.host.store.move_message(message.id, message.queue + POISON_SUFFIX)
        else:
            self.host.store.delete_message(message.id)
        finally:
            self._in_flight.discard(message.id)
            self._wake.set()
