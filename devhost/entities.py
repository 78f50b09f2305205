"""Durable entities: one queue of operations per entity, run one batch at a time.

An entity is addressed by its scheduler id `@name@key` (name lower-cased, as the SDK
writes it). Operations from orchestrations (call_entity / signal_entity) and clients
(signal_entity over HTTP) land in its inbox; a single drainer per entity runs them in
arrival order, so operations on one entity never overlap (the entity's own lock), and
each batch's new state and its responses commit in one transaction.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

from .history import EventType, event, fmt_time, utcnow
from .limits import PayloadTooLarge, check_message
from .state import EntityRow, StoredEvent
from .workers import WorkerLost

if TYPE_CHECKING:
    from .engine import Engine, Message

#: Operations handed to one entity function call, as the extension batches them.
MAX_BATCH = 100


def scheduler_id(name: str, key: str) -> str:
    return f"@{name.lower()}@{key}"


def split_id(entity_id: str) -> tuple[str, str]:
    name, _, key = entity_id[1:].partition("@")
    return name, key


class EntityScheduler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self._slots = asyncio.Semaphore(engine.config.max_concurrent_entities)
        self._dirty: set[str] = set()
        self._drainers: dict[str, asyncio.Task[None]] = {}

    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._drainers.values())

    @staticmethod
    def requests(decided: list[StoredEvent]) -> list[Message]:
        """The operation messages an episode sends (its EventSent events)."""
        return [(item.meta["entity"], StoredEvent(event=json.loads(item.event["Input"])))
                for item in decided
                if item.event["EventType"] == EventType.EVENT_SENT and item.meta.get("entity")]

    def resume(self, tree: set[str] | None) -> None:
        """After a restart: run entities with waiting operations (all, or only those a
        resumed instance is waiting on)."""
        for owner in self.store.inbox_owners():
            if not owner.startswith("@"):
                continue
            parents = {item.event.get("parent") for item in self.store.inbox(owner)}
            if tree is None or parents & tree:
                self.kick(owner)

    def signal(self, name: str, key: str, operation: str, input_text: str | None) -> str:
        """A client's signal_entity: queue the operation, answer nobody."""
        entity_id = scheduler_id(name, key)
        request = {"op": operation, "signal": True, "input": input_text, "id": str(uuid.uuid4()), "parent": None}
        self.store.deliver(entity_id, StoredEvent(event=request))
        self.kick(entity_id)
        return entity_id

    def read(self, name: str, key: str) -> EntityRow | None:
        row = self.store.get_entity(scheduler_id(name, key))
        return row if row is not None and row.exists else None

    def kick(self, entity_id: str) -> None:
        self._dirty.add(entity_id)
        drainer = self._drainers.get(entity_id)
        if drainer is None or drainer.done():
            self._drainers[entity_id] = asyncio.get_running_loop().create_task(self._drain(entity_id))

    async def _drain(self, entity_id: str) -> None:
        while entity_id in self._dirty:
            self._dirty.discard(entity_id)
            try:
                while await self._batch(entity_id):
                    pass
            except WorkerLost:
                self._dirty.add(entity_id)  # the batch did not commit: run it again

    async def _batch(self, entity_id: str) -> bool:
        """Run the next batch of waiting operations; False when none were waiting."""
        inbox = self.store.inbox(entity_id)[:MAX_BATCH]
        if not inbox:
            return False
        name, key = split_id(entity_id)
        row = self.store.get_entity(entity_id) or EntityRow(entity_id=entity_id, name=name, key=key,
                                                          updated=fmt_time(utcnow()))
        operations = [item.event for item in inbox]
        context = {"self": {"name": name, "key": key}, "exists": row.exists, "state": row.state,
                   "batch": [{"name": op["op"], "input": op.get("input"), "isSignal": op["signal"]}
                             for op in operations]}
        async with self._slots:
            text, error = await self.engine.runner.entity(name, json.dumps(context))
        results = self._results(row, operations, text, error)
        row.updated = fmt_time(utcnow())
        responses: list[Message] = []
        for op, result in zip(operations, results, strict=True):
            if not op["signal"] and op.get("parent"):
                body: dict[str, Any] = {"result": result["result"]}
                if result["isError"]:
                    body["exceptionType"] = "Error"
                responses.append((op["parent"], StoredEvent(event=event(EventType.EVENT_RAISED, Name=op["id"],
                                                                        Input=json.dumps(body)))))
        self.store.commit_entity_batch(row, [i.inbox_id for i in inbox if i.inbox_id], responses)
        for parent, _ in responses:
            self.engine.kick(parent)
        return True

    def _results(self, row: EntityRow, operations: list[dict[str, Any]], text: str | None,
                 error: str | None) -> list[dict[str, Any]]:
        """Apply a batch's outcome to `row`; one result per operation, failed ones included."""
        if error is None and text is not None:
            try:
                outcome = json.loads(text)
                state = outcome.get("entityState") if outcome.get("entityExists") else None
                check_message(state, f"state of entity '{row.entity_id}'")
                results = outcome.get("results") or []
                if len(results) == len(operations):
                    row.exists, row.state = bool(outcome.get("entityExists")), state
                    self._send_signals(outcome.get("signals") or [], row.entity_id)
                    return results
                error = "the entity function returned a result per operation it did not receive"
            except PayloadTooLarge as exc:
                error = str(exc)
            except (ValueError, AttributeError) as exc:
                error = f"the entity function returned a malformed batch result: {exc}"
        return [{"isError": True, "result": json.dumps(error)} for _ in operations]

    def _send_signals(self, signals: list[dict[str, Any]], source: str) -> None:
        for signal in signals:
            target = signal.get("target") or {}
            if target.get("name") and target.get("key") is not None:
                request = {"op": signal.get("name") or "", "signal": True, "input": signal.get("input"),
                           "id": str(uuid.uuid4()), "parent": source}
                entity_id = scheduler_id(target["name"], str(target["key"]))
                self.store.deliver(entity_id, StoredEvent(event=request))
                self.kick(entity_id)
