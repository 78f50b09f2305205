"""The orchestration engine: episodes, decisions, dispatch and recovery.

Each instance advances in episodes. An episode sends the committed history plus the
events that arrived since (its inbox) to the orchestrator, lets `decisions` check the
replayed actions and number the new ones, and commits everything in one SQLite
transaction before any work is dispatched. Messages to other instances and entities
(a parent's completion event, entity operations) go out in that same transaction.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from .config import HostConfig
from .decisions import (
    COMPLETIONS,
    SCHEDULING,
    OrchestrationError,
    cancelled_timers,
    episode_time,
    new_actions,
    next_sequence,
    outstanding,
    play_order,
    retry_step,
)
from .dispatch import Dispatcher
from .entities import EntityScheduler
from .functions import FunctionIndex, UnknownFunction, unknown_function_message
from .history import (
    ActionType,
    EventType,
    OrchestratorReply,
    build_context,
    event,
    execution_started,
    failure_details,
    fmt_time,
    parse_reply,
    utcnow,
)
from .limits import PayloadTooLarge, check_custom_status, check_message
from .state import TERMINAL, InstanceRow, StateStore, StoredEvent
from .workers import Runner, WorkerLost

log = logging.getLogger("devhost.engine")
Message = tuple[str, StoredEvent]


class InstanceExists(RuntimeError):
    """A start with the id of a running instance, when host.json forbids replacing it."""


class Engine:
    """Drives every instance on the host's event loop."""

    def __init__(self, index: FunctionIndex, store: StateStore, runner: Runner, config: HostConfig) -> None:
        self.index = index
        self.store = store
        self.runner = runner
        self.config = config
        self._dirty: set[str] = set()
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed: dict[str, asyncio.Event] = {}
        self.activity_slots = asyncio.Semaphore(config.max_concurrent_activities)
        self._episode_slots = asyncio.Semaphore(config.max_concurrent_orchestrators)
        # The durableClient binding JSON, for activities that declare one; the host sets it.
        self.client_binding: Callable[[], str] | None = None
        self.entities = EntityScheduler(self)
        self.dispatcher = Dispatcher(self)

    # ---- lifecycle -------------------------------------------------------------------
    def resume(self, only: Iterable[str] | None = None) -> None:
        """Re-dispatch in-flight work of unfinished instances after a restart: all of them,
        or only the trees (instance and sub-orchestrations) of the ids in `only`."""
        tree = None if only is None else self.tree(only)
        for row in self.store.list_instances(unfinished_only=True):
            if tree is None or row.instance_id in tree:
                self.redispatch(row)
        self.entities.resume(tree)

    def tree(self, roots: Iterable[str]) -> set[str]:
        found: set[str] = set()
        todo = list(roots)
        while todo:
            instance_id = todo.pop()
            if instance_id not in found:
                found.add(instance_id)
                todo.extend(self.store.children(instance_id))
        return found

    def redispatch(self, row: InstanceRow) -> None:
        """Start again whatever the instance was waiting on, and play its inbox."""
        history, inbox = self.store.history(row.instance_id), self.store.inbox(row.instance_id)
        for item in outstanding(history, inbox):
            self.dispatcher.dispatch(row, item)
        if inbox:
            self.kick(row.instance_id)

    async def stop(self) -> None:
        self.dispatcher.stop()
        pending = list(self._tasks) + list(self._drainers.values()) + self.entities.tasks()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.dispatcher.close()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- starting and notifications --------------------------------------------------
    def start(self, name: str, input_text: str | None, instance_id: str,
              parent: tuple[str, int] | None = None) -> str:
        """Create an instance. A client start replaces a finished instance with this id,
        and a running one too unless host.json says NonRunningStates; a sub-orchestration
        start keeps a running instance (it is the same child, scheduled again)."""
        orchestrator = self.index.orchestrator(name)
        if orchestrator is None:
            raise UnknownFunction(unknown_function_message("orchestrator", name, list(self.index.orchestrators)))
        check_message(input_text, "orchestration input")
        existing = self.store.get_instance(instance_id)
        if existing is not None and existing.status not in TERMINAL:
            if parent is not None:
                return instance_id
            if not self.config.replace_running_instances:
                raise InstanceExists(f"An Orchestration instance with the status {existing.status} already exists.")
            self.cancel_timers(instance_id)
        now = utcnow()
        parent_ref = None
        if parent is not None:
            parent_ref = {"OrchestrationInstance": {"InstanceId": parent[0]}, "TaskScheduledId": parent[1]}
        row = InstanceRow(instance_id=instance_id, name=orchestrator.name, status="Pending",
                          input=input_text, parent_id=parent and parent[0],
                          parent_task_id=parent and parent[1],
                          created=fmt_time(now), updated=fmt_time(now))
        first = execution_started(orchestrator.name, input_text, instance_id, parent_ref, now)
        self.store.create_instance(row, StoredEvent(event=first))
        self.notify(instance_id)
        self.kick(instance_id)
        return instance_id

    def deliver(self, instance_id: str, item: StoredEvent) -> None:
        """Persist an incoming event, then schedule an episode to play it."""
        self.store.deliver(instance_id, item)
        self.kick(instance_id)

    def kick(self, instance_id: str) -> None:
        if instance_id.startswith("@"):
            self.entities.kick(instance_id)
            return
        self._dirty.add(instance_id)
        drainer = self._drainers.get(instance_id)
        if drainer is None or drainer.done():
            self._drainers[instance_id] = asyncio.get_running_loop().create_task(self._drain(instance_id))

    async def wait_changed(self, instance_id: str, timeout: float | None) -> None:
        """Block until the instance's row changes (or the timeout passes)."""
        changed = self._changed.setdefault(instance_id, asyncio.Event())
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return

    def notify(self, instance_id: str) -> None:
        old = self._changed.pop(instance_id, None)
        if old is not None:
            old.set()

    async def _drain(self, instance_id: str) -> None:
        while instance_id in self._dirty:
            self._dirty.discard(instance_id)
            try:
                await self._episode(instance_id)
            except WorkerLost:
                log.warning("The worker running an episode of '%s' exited; running it again", instance_id)
                self._dirty.add(instance_id)
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
        self.commit_terminal(row, [], failed=True)

    def commit_terminal(self, row: InstanceRow, events: list[StoredEvent], failed: bool,
                        consumed: list[int] | None = None, outbound: list[Message] | None = None) -> None:
        """Commit an instance that has just ended, and tell its parent in the same step."""
        message = self.parent_message(row, failed=failed)
        notify = ([message] if message else []) + (outbound or [])
        self.store.commit_episode(row, events, consumed or [], notify=notify)
        self.cancel_timers(row.instance_id)
        if message is not None:
            self.kick(message[0])
        self.notify(row.instance_id)

    # ---- one episode -----------------------------------------------------------------
    async def _episode(self, instance_id: str) -> None:
        row = self.store.get_instance(instance_id)
        inbox = self.store.inbox(instance_id)
        if row is None or not inbox:
            return
        if row.status in TERMINAL:
            self.store.commit_episode(row, [], [i.inbox_id for i in inbox if i.inbox_id])
            return
        if row.status == "Suspended":
            return
        past = [e.event for e in self.store.history(instance_id)]
        inbox.sort(key=play_order)
        now = episode_time(past)
        started = StoredEvent(event=event(EventType.ORCHESTRATOR_STARTED, at=now))
        sent = past + [started.event] + [i.event for i in inbox]
        start_event = next(e for e in sent if e["EventType"] == EventType.EXECUTION_STARTED)
        context = build_context(sent, start_event.get("Input"), instance_id, row.parent_id, replayed=len(past))
        async with self._episode_slots:
            reply = parse_reply(*await self.runner.episode(row.name, context))
        decided: list[StoredEvent] = [started, *inbox]
        sequence = [next_sequence(past)]
        for item in inbox:
            decided.extend(retry_step(item, sequence, now))
        try:
            decided.extend(new_actions(row, reply, sequence, self.index, now))
            custom = None if reply.custom_status is None else json.dumps(reply.custom_status)
            check_custom_status(custom)
            check_message(custom, "custom status")
            if reply.is_done and not reply.error:
                check_message(json.dumps(reply.output), "orchestration output")
        except (OrchestrationError, PayloadTooLarge) as exc:
            reply = OrchestratorReply(error=str(exc))
        self._finish(row, reply, decided, [i.inbox_id for i in inbox if i.inbox_id], now)

    def _finish(self, row: InstanceRow, reply: OrchestratorReply, decided: list[StoredEvent],
                consumed: list[int], now: datetime) -> None:
        """Commit the episode, then dispatch what it scheduled and tell whoever waits."""
        current = self.store.get_instance(row.instance_id)
        if current is None or current.created != row.created:
            return  # purged, or replaced by a new start, while the orchestrator ran
        if current.status in TERMINAL:
            # Terminated while the orchestrator ran: the episode's decisions are void.
            self.store.commit_episode(current, [], consumed)
            return
        running = "Suspended" if current.status == "Suspended" else "Running"
        continue_as_new = next((a for a in reply.flat_actions()
                                if a.get("actionType") == ActionType.CONTINUE_AS_NEW), None)
        if reply.custom_status is not None:
            row.custom_status = json.dumps(reply.custom_status)
        row.updated = fmt_time(now)
        outbound = self.entities.requests(decided)
        if reply.error is not None and not reply.is_done:
            row.status = "Failed"
            row.output = json.dumps(f"Orchestrator function '{row.name}' failed: {reply.error}")
            decided.append(StoredEvent(event=event(EventType.EXECUTION_COMPLETED, at=now, OrchestrationStatus=3,
                                                   Result=row.output)))
        elif continue_as_new is not None:
            self._continue_as_new(row, continue_as_new.get("input"), decided, consumed, outbound, now)
            return
        elif reply.is_done and not self._pending_timers(row, reply, decided):
            row.status = "Completed"
            row.output = json.dumps(reply.output)
            decided.append(StoredEvent(event=event(EventType.EXECUTION_COMPLETED, at=now, OrchestrationStatus=1,
                                                   Result=row.output)))
        else:
            row.status = running
        decided.append(StoredEvent(event=event(EventType.ORCHESTRATOR_COMPLETED, at=now)))
        if row.status in TERMINAL:
            self.commit_terminal(row, decided, failed=row.status == "Failed", consumed=consumed, outbound=outbound)
        else:
            self.store.commit_episode(row, decided, consumed, notify=outbound)
            for item in decided:
                if item.event["EventType"] in SCHEDULING:
                    self.dispatcher.dispatch(row, item)
            self.notify(row.instance_id)
        for target, _ in outbound:
            self.kick(target)

    def _pending_timers(self, row: InstanceRow, reply: OrchestratorReply, decided: list[StoredEvent]) -> bool:
        """A returned orchestrator stays Running while a timer it did not cancel is pending."""
        cancelled = cancelled_timers(row, reply)
        history = self.store.history(row.instance_id) + decided
        return any(e.event["EventType"] == EventType.TIMER_CREATED and not e.meta.get("retry")
                   and e.event["EventId"] not in cancelled for e in outstanding(history, []))

    def _continue_as_new(self, row: InstanceRow, input_text: str | None, decided: list[StoredEvent],
                         consumed: list[int], outbound: list[Message], now: datetime) -> None:
        """Restart the instance with a fresh history and the new input. Events raised while
        this happens stay in the inbox and reach the new generation; completions that came in
        while the episode ran (a timer firing, an activity finishing) belong to the generation
        that ends here and are dropped, as Azure drops a previous execution's messages: the
        new generation numbers its tasks from 0 again, so one would complete the wrong task."""
        try:
            check_message(input_text, "continue-as-new input")
        except PayloadTooLarge as exc:
            self._finish(row, OrchestratorReply(error=str(exc)), decided, consumed, now)
            return
        self.cancel_timers(row.instance_id)
        consumed = consumed + [item.inbox_id for item in self.store.inbox(row.instance_id)
                               if item.inbox_id and item.event["EventType"] in COMPLETIONS]
        row.status, row.input, row.actions_seen = "ContinuedAsNew", input_text, []
        parent_ref = None
        if row.parent_id is not None:
            parent_ref = {"OrchestrationInstance": {"InstanceId": row.parent_id},
                          "TaskScheduledId": row.parent_task_id}
        first = execution_started(row.name, input_text, row.instance_id, parent_ref, now)
        self.store.commit_episode(row, [], consumed, reset_history=True,
                                  notify=[(row.instance_id, StoredEvent(event=first)), *outbound])
        self.notify(row.instance_id)
        self.kick(row.instance_id)
        for target, _ in outbound:
            self.kick(target)

    def parent_message(self, row: InstanceRow, failed: bool) -> Message | None:
        """The SubOrchestrationInstanceCompleted/Failed event for the parent, if any."""
        if row.parent_id is None or row.parent_task_id is None:
            return None
        meta = self._scheduled_meta(row.parent_id, row.parent_task_id)
        if failed:
            reason = json.loads(row.output or "null")
            kind = EventType.SUB_ORCHESTRATION_FAILED
            body = {"Reason": reason, "Details": None,
                    "FailureDetails": failure_details("OrchestrationFailureException", str(reason))}
            meta = dict(meta, allocates=bool(meta.get("retry")))
        else:
            kind, body = EventType.SUB_ORCHESTRATION_COMPLETED, {"Result": row.output}
        return row.parent_id, StoredEvent(event=event(kind, TaskScheduledId=row.parent_task_id, **body), meta=meta)

    def _scheduled_meta(self, instance_id: str, task_id: int) -> dict[str, Any]:
        for item in self.store.history(instance_id):
            if item.event["EventType"] in SCHEDULING and item.event["EventId"] == task_id:
                return item.meta
        return {}

    def deliver_if_current(self, instance_id: str, scheduled: StoredEvent, done: StoredEvent) -> None:
        """Drop results for instances that ended or restarted since the work was scheduled."""
        row = self.store.get_instance(instance_id)
        if row is None or row.status in TERMINAL:
            return
        still_open = any(e.event == scheduled.event
                         for e in outstanding(self.store.history(instance_id), self.store.inbox(instance_id)))
        if still_open:
            self.deliver(instance_id, done)

    def cancel_timers(self, instance_id: str) -> None:
        self.dispatcher.cancel_timers(instance_id)
