"""Instance management, as the Durable client and HTTP API offer it: raise events,
terminate, suspend and resume, rewind, restart, purge, and list instances.

Each operation answers the way the extension's HTTP API does: `ACCEPTED` (202), `GONE`
(410: the instance already finished) or `MISSING` (404), so the HTTP layer only maps
outcomes to status codes.
"""
from __future__ import annotations

import json
import uuid
from enum import Enum
from typing import Any

from .engine import Engine
from .history import EventType, event, fmt_time, utcnow
from .limits import check_message
from .state import TERMINAL, InstanceQuery, InstanceRow, StoredEvent


class Outcome(Enum):
    ACCEPTED = 202
    GONE = 410
    MISSING = 404
    CONFLICT = 400


class InstanceControl:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store

    def _live(self, instance_id: str) -> tuple[InstanceRow | None, Outcome | None]:
        row = self.store.get_instance(instance_id)
        if row is None:
            return None, Outcome.MISSING
        if row.status in TERMINAL:
            return row, Outcome.GONE
        return row, None

    def raise_event(self, instance_id: str, name: str, data_text: str | None) -> Outcome:
        """Deliver an external event; a suspended instance keeps it until resumed."""
        row, refused = self._live(instance_id)
        if refused is not None:
            return refused
        check_message(data_text, f"data of event '{name}'")
        self.engine.deliver(instance_id, StoredEvent(event=event(EventType.EVENT_RAISED, Name=name, Input=data_text)))
        return Outcome.ACCEPTED

    def terminate(self, instance_id: str, reason: str) -> Outcome:
        """End a running instance now; late results for it are dropped."""
        row, refused = self._live(instance_id)
        if refused is not None or row is None:
            return refused or Outcome.MISSING
        now = utcnow()
        row.status, row.output, row.updated = "Terminated", json.dumps(reason), fmt_time(now)
        ended = [StoredEvent(event=event(EventType.EXECUTION_TERMINATED, at=now, Input=reason)),
                 StoredEvent(event=event(EventType.EXECUTION_COMPLETED, at=now, OrchestrationStatus=5,
                                         Result=row.output))]
        self.engine.commit_terminal(row, ended, failed=True)
        return Outcome.ACCEPTED

    def suspend(self, instance_id: str, reason: str) -> Outcome:
        """Stop running episodes; events and results wait until the instance resumes."""
        row, refused = self._live(instance_id)
        if refused is not None or row is None:
            return refused or Outcome.MISSING
        if row.status != "Suspended":
            row.status, row.updated = "Suspended", fmt_time(utcnow())
            marker = StoredEvent(event=event(EventType.EXECUTION_SUSPENDED, Reason=reason))
            self.store.commit_episode(row, [marker], [])
            self.engine.notify(instance_id)
        return Outcome.ACCEPTED

    def resume(self, instance_id: str, reason: str) -> Outcome:
        row, refused = self._live(instance_id)
        if refused is not None or row is None:
            return refused or Outcome.MISSING
        if row.status == "Suspended":
            row.status, row.updated = "Running", fmt_time(utcnow())
            marker = StoredEvent(event=event(EventType.EXECUTION_RESUMED, Reason=reason))
            self.store.commit_episode(row, [marker], [])
            self.engine.notify(instance_id)
            self.engine.kick(instance_id)
        return Outcome.ACCEPTED

    def rewind(self, instance_id: str, reason: str) -> Outcome:
        """Put a failed instance back to before its failures: failed activities run again,
        failed sub-orchestrations are rewound too, completed work is kept."""
        row = self.store.get_instance(instance_id)
        if row is None:
            return Outcome.MISSING
        if row.status != "Failed":
            return Outcome.GONE
        history = self.store.history(instance_id)
        kept, failed_children = _without_failures(history)
        for child_id in failed_children:
            child = self.store.get_instance(child_id)
            if child is not None and child.status == "Failed":
                self.rewind(child_id, reason)
        row.status, row.output, row.updated = "Running", None, fmt_time(utcnow())
        self.store.replace_history(row, kept)
        self.engine.redispatch(row)
        self.engine.deliver(instance_id, StoredEvent(event=event(EventType.GENERIC_EVENT, Data=reason)))
        self.engine.notify(instance_id)
        return Outcome.ACCEPTED

    def restart(self, instance_id: str, new_instance_id: bool = True) -> str | None:
        """Start the instance's orchestrator again with its original input."""
        row = self.store.get_instance(instance_id)
        if row is None:
            return None
        target = uuid.uuid4().hex if new_instance_id else instance_id
        return self.engine.start(row.name, row.input, target)

    def purge(self, instance_id: str) -> Outcome:
        row = self.store.get_instance(instance_id)
        if row is None:
            return Outcome.MISSING
        if row.status not in TERMINAL:
            return Outcome.CONFLICT
        self.store.purge([instance_id])
        return Outcome.ACCEPTED

    def purge_where(self, query: InstanceQuery) -> int:
        """Purge finished instances created in a time range (optionally of some statuses)."""
        statuses = [s for s in (query.statuses or TERMINAL) if s in TERMINAL]
        scoped = query.model_copy(update={"statuses": statuses, "top": None, "after": None})
        rows, _ = self.store.query_instances(scoped)
        return self.store.purge([r.instance_id for r in rows])


def _chain(meta: dict[str, Any]) -> tuple[str, str] | None:
    retry = meta.get("retry")
    return (retry["first_at"], json.dumps(retry["action"], sort_keys=True)) if retry else None


def _without_failures(history: list[StoredEvent]) -> tuple[list[StoredEvent], list[str]]:
    """History minus its failure events: the end of the execution, each plain failed task,
    and the last failure of each retry chain with the timer after it. Returns what stays
    and the ids of sub-orchestrations whose failure was removed."""
    created = {e.event["EventId"]: e for e in history if e.event["EventType"] == EventType.SUB_ORCHESTRATION_CREATED}
    rescheduled = {(_chain(e.meta), e.meta["retry"]["attempt"]) for e in history
                   if e.event["EventType"] in (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_CREATED)
                   and e.meta.get("retry")}
    drop: set[int] = set()
    children: list[str] = []
    for position, item in enumerate(history):
        kind = item.event["EventType"]
        if kind == EventType.EXECUTION_COMPLETED:
            drop.add(position)
        elif kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_FAILED):
            chain = _chain(item.meta)
            attempt = item.meta.get("retry", {}).get("attempt", 0)
            if chain is not None and (chain, attempt + 1) in rescheduled:
                continue
            drop.add(position)
            drop.update(_retry_timer(history, position, chain, attempt))
            if kind == EventType.SUB_ORCHESTRATION_FAILED:
                child = created.get(item.event.get("TaskScheduledId"))
                if child is not None:
                    children.append(child.event["InstanceId"])
    return [e for i, e in enumerate(history) if i not in drop], children


def _retry_timer(history: list[StoredEvent], after: int, chain: tuple[str, str] | None, attempt: int) -> set[int]:
    """Positions of the timer a retry chain started after its last failure, and its firing."""
    if chain is None:
        return set()
    for position in range(after + 1, len(history)):
        item = history[position]
        if item.event["EventType"] == EventType.TIMER_CREATED and _chain(item.meta) == chain \
                and item.meta["retry"]["attempt"] == attempt:
            timer_id = item.event["EventId"]
            fired = {i for i, e in enumerate(history)
                     if e.event["EventType"] == EventType.TIMER_FIRED and e.event.get("TimerId") == timer_id}
            return {position} | fired
    return set()
