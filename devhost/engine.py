"""The orchestration engine: episodes, decisions, dispatch and recovery.

Each instance advances in episodes. An episode sends the committed history plus the
events that arrived since (its inbox) to the orchestrator, lets `decisions` check the
replayed actions and number the new ones, and commits everything in one SQLite
transaction before any work is dispatched.
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

from dateutil.parser import isoparse

from .decisions import (
    SCHEDULING,
    OrchestrationError,
    episode_time,
    new_actions,
    next_sequence,
    outstanding,
    play_order,
    retry_step,
)
from .functions import FunctionIndex
from .history import (
    ActionType,
    EventType,
    OrchestratorReply,
    build_context,
    event,
    execution_started,
    fmt_time,
    parse_reply,
    utcnow,
)
from .state import TERMINAL, InstanceRow, StateStore, StoredEvent
from .workers import Workers

log = logging.getLogger("devhost.engine")


class Engine:
    """Drives every instance on the host's event loop."""

    def __init__(self, index: FunctionIndex, store: StateStore, workers: Workers) -> None:
        self.index = index
        self.store = store
        self.workers = workers
        self._dirty: set[str] = set()
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: dict[str, dict[int, asyncio.TimerHandle]] = {}
        self._changed: dict[str, asyncio.Event] = {}

    # ---- lifecycle -------------------------------------------------------------------
    def resume_all(self) -> None:
        """Re-dispatch in-flight work of every unfinished instance (after a restart)."""
        for row in self.store.list_instances(unfinished_only=True):
            history, inbox = self.store.history(row.instance_id), self.store.inbox(row.instance_id)
            for item in outstanding(history, inbox):
                self._dispatch(row, item)
            if inbox:
                self.kick(row.instance_id)

    async def stop(self) -> None:
        for timers in self._timers.values():
            for handle in timers.values():
                handle.cancel()
        pending = list(self._tasks) + list(self._drainers.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- starting and notifications --------------------------------------------------
    def start(self, name: str, input_text: str | None, instance_id: str,
              parent: tuple[str, int] | None = None) -> str:
        """Create (or replace a finished) instance; a running one with this id is kept."""
        if name not in self.index.orchestrators:
            raise KeyError(f"No orchestrator function named '{name}'")
        existing = self.store.get_instance(instance_id)
        if existing is not None and existing.status not in TERMINAL:
            return instance_id
        now = utcnow()
        parent_ref = None
        if parent is not None:
            parent_ref = {"OrchestrationInstance": {"InstanceId": parent[0]},
                          "TaskScheduledId": parent[1]}
        row = InstanceRow(instance_id=instance_id, name=name, status="Pending",
                          input=input_text, parent_id=parent and parent[0],
                          parent_task_id=parent and parent[1],
                          created=fmt_time(now), updated=fmt_time(now))
        first = execution_started(name, input_text, instance_id, parent_ref, now)
        self.store.create_instance(row, StoredEvent(event=first))
        self._notify(instance_id)
        self.kick(instance_id)
        return instance_id

    def terminate(self, instance_id: str, reason: str) -> bool:
        """End a running instance now; late results for it are dropped."""
        row = self.store.get_instance(instance_id)
        if row is None or row.status in TERMINAL:
            return False
        now = utcnow()
        row.status, row.output, row.updated = "Terminated", json.dumps(reason), fmt_time(now)
        ended = StoredEvent(event=event(EventType.EXECUTION_TERMINATED, at=now, Input=reason))
        notify = self._parent_message(row, failed=True)
        self.store.commit_episode(row, [ended], [], notify=notify)
        self._cancel_timers(instance_id)
        if notify is not None:
            self.kick(notify[0])
        self._notify(instance_id)
        return True

    def raise_event(self, instance_id: str, name: str, data_text: str | None) -> bool:
        """Deliver an external event; False when the instance is unknown or finished."""
        row = self.store.get_instance(instance_id)
        if row is None or row.status in TERMINAL:
            return False
        self.deliver(instance_id, StoredEvent(event=event(EventType.EVENT_RAISED, Name=name,
                                                          Input=data_text)))
        return True

    def deliver(self, instance_id: str, item: StoredEvent) -> None:
        """Persist an incoming event, then schedule an episode to play it."""
        self.store.deliver(instance_id, item)
        self.kick(instance_id)

    def kick(self, instance_id: str) -> None:
        self._dirty.add(instance_id)
        drainer = self._drainers.get(instance_id)
        if drainer is None or drainer.done():
            loop = asyncio.get_running_loop()
            self._drainers[instance_id] = loop.create_task(self._drain(instance_id))

    def _changed_event(self, instance_id: str) -> asyncio.Event:
        return self._changed.setdefault(instance_id, asyncio.Event())

    async def wait_changed(self, instance_id: str, timeout: float | None) -> None:
        """Block until the instance's row changes (or the timeout passes)."""
        changed = self._changed_event(instance_id)
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return

    def _notify(self, instance_id: str) -> None:
        old = self._changed.pop(instance_id, None)
        if old is not None:
            old.set()

    async def _drain(self, instance_id: str) -> None:
        while instance_id in self._dirty:
            self._dirty.discard(instance_id)
            try:
                await self._episode(instance_id)
            except Exception as exc:  # noqa: BLE001 - a host bug must not strand the instance
                log.exception("Episode of '%s' failed inside the host", instance_id)
                self._host_failure(instance_id, exc)

    def _host_failure(self, instance_id: str, exc: Exception) -> None:
        """Fail the instance visibly when the host itself could not run an episode."""
        row = self.store.get_instance(instance_id)
        if row is None or row.status in TERMINAL:
            return
        row.status, row.updated = "Failed", fmt_time(utcnow())
        row.output = json.dumps(f"The devhost could not run an episode: {exc!r}")
        notify = self._parent_message(row, failed=True)
        self.store.commit_episode(row, [], [], notify=notify)
        if notify is not None:
            self.kick(notify[0])
        self._notify(instance_id)

    # ---- one episode -----------------------------------------------------------------
    async def _episode(self, instance_id: str) -> None:
        row = self.store.get_instance(instance_id)
        inbox = self.store.inbox(instance_id)
        if row is None or not inbox:
            return
        if row.status in TERMINAL:
            self.store.commit_episode(row, [], [i.inbox_id for i in inbox if i.inbox_id])
            return
        past = [e.event for e in self.store.history(instance_id)]
        inbox.sort(key=play_order)
        now = episode_time(past)
        started = StoredEvent(event=event(EventType.ORCHESTRATOR_STARTED, at=now))
        sent = past + [started.event] + [i.event for i in inbox]
        start_event = next(e for e in sent if e["EventType"] == EventType.EXECUTION_STARTED)
        context = build_context(sent, start_event.get("Input"), instance_id, row.parent_id,
                                replayed=len(past))
        orchestrator = self.index.orchestrators.get(row.name)
        if orchestrator is None:
            reply = OrchestratorReply(error=f"No orchestrator function named '{row.name}'")
        else:
            reply = parse_reply(*await self.workers.run_episode(orchestrator, context))
        decided: list[StoredEvent] = [started, *inbox]
        sequence = [next_sequence(past)]
        for item in inbox:
            decided.extend(retry_step(item, sequence, now))
        try:
            decided.extend(new_actions(row, reply, sequence))
        except OrchestrationError as exc:
            reply = OrchestratorReply(error=str(exc))
        self._finish(row, reply, decided, [i.inbox_id for i in inbox if i.inbox_id], now)

    def _finish(self, row: InstanceRow, reply: OrchestratorReply, decided: list[StoredEvent],
                consumed: list[int], now: datetime) -> None:
        """Commit the episode, then dispatch what it scheduled and tell the parent."""
        current = self.store.get_instance(row.instance_id)
        if current is not None and current.status in TERMINAL:
            # Terminated while the orchestrator ran: the episode's decisions are void.
            self.store.commit_episode(current, [], consumed)
            return
        continue_as_new = next((a for a in reply.flat_actions()
                                if a.get("actionType") == ActionType.CONTINUE_AS_NEW), None)
        if reply.custom_status is not None:
            row.custom_status = json.dumps(reply.custom_status)
        row.updated = fmt_time(now)
        notify: tuple[str, StoredEvent] | None = None
        if reply.error is not None and not reply.is_done:
            row.status = "Failed"
            row.output = json.dumps(f"Orchestrator function '{row.name}' failed: {reply.error}")
            decided.append(StoredEvent(event=event(EventType.EXECUTION_COMPLETED, at=now,
                                                   OrchestrationStatus=3, Result=row.output)))
            notify = self._parent_message(row, failed=True)
        elif continue_as_new is not None:
            self._continue_as_new(row, continue_as_new.get("input"), consumed, now)
            return
        elif reply.is_done:
            row.status = "Completed"
            row.output = json.dumps(reply.output)
            decided.append(StoredEvent(event=event(EventType.EXECUTION_COMPLETED, at=now,
                                                   OrchestrationStatus=1, Result=row.output)))
            notify = self._parent_message(row, failed=False)
        else:
            row.status = "Running"
        decided.append(StoredEvent(event=event(EventType.ORCHESTRATOR_COMPLETED, at=now)))
        self.store.commit_episode(row, decided, consumed, notify=notify)
        if notify is not None:
            self.kick(notify[0])
        if row.status in TERMINAL:
            self._cancel_timers(row.instance_id)
        else:
            for item in decided:
                if item.event["EventType"] in SCHEDULING:
                    self._dispatch(row, item)
        self._notify(row.instance_id)

    def _continue_as_new(self, row: InstanceRow, input_text: str | None,
                         consumed: list[int], now: datetime) -> None:
        """Restart the instance with a fresh history and the new input."""
        self._cancel_timers(row.instance_id)
        row.status, row.input, row.actions_seen = "ContinuedAsNew", input_text, []
        parent_ref = None
        if row.parent_id is not None:
            parent_ref = {"OrchestrationInstance": {"InstanceId": row.parent_id},
                          "TaskScheduledId": row.parent_task_id}
        first = execution_started(row.name, input_text, row.instance_id, parent_ref, now)
        self.store.commit_episode(row, [], consumed, reset_history=True,
                                  notify=(row.instance_id, StoredEvent(event=first)))
        self._notify(row.instance_id)
        self.kick(row.instance_id)

    def _parent_message(self, row: InstanceRow, failed: bool) -> tuple[str, StoredEvent] | None:
        """The SubOrchestrationInstanceCompleted/Failed event for the parent, if any."""
        if row.parent_id is None or row.parent_task_id is None:
            return None
        meta = self._scheduled_meta(row.parent_id, row.parent_task_id)
        if failed:
            reason = json.loads(row.output or "null")
            kind = EventType.SUB_ORCHESTRATION_FAILED
            body = {"Reason": reason, "Details": None}
            meta = dict(meta, allocates=bool(meta.get("retry")))
        else:
            kind, body = EventType.SUB_ORCHESTRATION_COMPLETED, {"Result": row.output}
        return row.parent_id, StoredEvent(
            event=event(kind, TaskScheduledId=row.parent_task_id, **body), meta=meta)

    def _scheduled_meta(self, instance_id: str, task_id: int) -> dict[str, Any]:
        for item in self.store.history(instance_id):
            if item.event["EventType"] in SCHEDULING and item.event["EventId"] == task_id:
                return item.meta
        return {}

    # ---- dispatching work ------------------------------------------------------------
    def _dispatch(self, row: InstanceRow, item: StoredEvent) -> None:
        """Start the work one scheduling event stands for."""
        kind = item.event["EventType"]
        task_id = item.event["EventId"]
        if kind == EventType.TASK_SCHEDULED:
            self._spawn(self._activity(row.instance_id, item))
        elif kind == EventType.TIMER_CREATED:
            self._arm_timer(row.instance_id, task_id, item)
        elif kind == EventType.SUB_ORCHESTRATION_CREATED:
            self._start_child(row, item)

    async def _activity(self, instance_id: str, item: StoredEvent) -> None:
        name, task_id = item.event["Name"], item.event["EventId"]
        outcome = await self.workers.run_activity(self.index.activities.get(name), name,
                                                  item.event.get("Input"))
        if outcome.failed:
            done = event(EventType.TASK_FAILED, TaskScheduledId=task_id,
                         Reason=outcome.reason, Details=outcome.details)
        else:
            done = event(EventType.TASK_COMPLETED, TaskScheduledId=task_id, Result=outcome.result)
        meta = dict(item.meta, allocates=bool(item.meta.get("retry")) and outcome.failed)
        self._deliver_if_current(instance_id, item, StoredEvent(event=done, meta=meta))

    def _deliver_if_current(self, instance_id: str, scheduled: StoredEvent,
                            done: StoredEvent) -> None:
        """Drop results for instances that ended or restarted since the work was scheduled."""
        row = self.store.get_instance(instance_id)
        if row is None or row.status in TERMINAL:
            return
        still_open = any(e.event == scheduled.event
                         for e in outstanding(self.store.history(instance_id),
                                              self.store.inbox(instance_id)))
        if still_open:
            self.deliver(instance_id, done)

    def _arm_timer(self, instance_id: str, task_id: int, item: StoredEvent) -> None:
        fire_at = isoparse(item.event["FireAt"])
        delay = max(0.0, (fire_at - utcnow()).total_seconds())
        fired = event(EventType.TIMER_FIRED, TimerId=task_id, FireAt=item.event["FireAt"])
        retry = item.meta.get("retry")
        meta = {"retry": retry, "allocates": retry["attempt"] < retry["max"]} if retry else {}

        def fire() -> None:
            self._timers.get(instance_id, {}).pop(task_id, None)
            self._deliver_if_current(instance_id, item, StoredEvent(event=fired, meta=meta))

        loop = asyncio.get_running_loop()
        self._timers.setdefault(instance_id, {})[task_id] = loop.call_later(delay, fire)

    def _cancel_timers(self, instance_id: str) -> None:
        for handle in self._timers.pop(instance_id, {}).values():
            handle.cancel()

    def _start_child(self, row: InstanceRow, item: StoredEvent) -> None:
        child_id, task_id = item.event["InstanceId"], item.event["EventId"]
        name = item.event["Name"]
        child = self.store.get_instance(child_id)
        if child is not None and child.status in TERMINAL and child.parent_id == row.instance_id \
                and child.parent_task_id == task_id:
            message = self._parent_message(child, failed=child.status != "Completed")
            if message is not None:
                self._deliver_if_current(row.instance_id, item, message[1])
            return
        try:
            self.start(name, item.event.get("Input"), child_id, (row.instance_id, task_id))
        except KeyError as exc:
            failed = event(EventType.SUB_ORCHESTRATION_FAILED, TaskScheduledId=task_id,
                           Reason=str(exc.args[0]), Details=None)
            meta = dict(item.meta, allocates=bool(item.meta.get("retry")))
            self.deliver(row.instance_id, StoredEvent(event=failed, meta=meta))
