"""Dispatching the work an episode scheduled: activities (and the built-in HTTP
activity), durable timers and sub-orchestrations. Each finishes by delivering its
completion event to the instance, unless the instance moved on in the meantime."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from dateutil.parser import isoparse

from .durable_http import DurableHttp
from .functions import UnknownFunction
from .history import EventType, event, failure_details, utcnow
from .invocation import ActivityOutcome
from .limits import PayloadTooLarge, check_message
from .state import TERMINAL, InstanceRow, StoredEvent

if TYPE_CHECKING:
    from .engine import Engine


class Dispatcher:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._timers: dict[str, dict[int, asyncio.TimerHandle]] = {}
        self.http = DurableHttp(engine.config.http_poll_interval, engine.activity_slots)

    def stop(self) -> None:
        for timers in self._timers.values():
            for handle in timers.values():
                handle.cancel()

    async def close(self) -> None:
        await self.http.close()

    def dispatch(self, row: InstanceRow, item: StoredEvent) -> None:
        """Start the work one scheduling event stands for."""
        kind = item.event["EventType"]
        if kind == EventType.TASK_SCHEDULED:
            self.engine.spawn(self._activity(row.instance_id, item))
        elif kind == EventType.TIMER_CREATED:
            self._arm_timer(row.instance_id, item.event["EventId"], item)
        elif kind == EventType.SUB_ORCHESTRATION_CREATED:
            self._start_child(row, item)

    async def _activity(self, instance_id: str, item: StoredEvent) -> None:
        name, task_id = item.event["Name"], item.event["EventId"]
        retry = item.meta.get("retry") or {}
        if retry.get("expired"):
            failure = retry["failure"]
            outcome = ActivityOutcome(reason=failure["Reason"], details=failure["Details"],
                                      error_type=(failure.get("FailureDetails") or {}).get("ErrorType"))
        elif item.meta.get("http"):
            outcome = await self.http.run(item.event.get("Input") or "[]")
        else:
            async with self.engine.activity_slots:
                outcome = await self.engine.runner.activity(name, item.event.get("Input"), self._client_binding(name))
            if not outcome.failed:
                try:
                    check_message(outcome.result, f"output of activity '{name}'")
                except PayloadTooLarge as exc:
                    outcome = ActivityOutcome(reason=f"Activity function '{name}' failed: {exc}",
                                              error_type="PayloadTooLarge")
        if outcome.failed:
            done = event(EventType.TASK_FAILED, TaskScheduledId=task_id, Reason=outcome.reason, Details=outcome.details,
                         FailureDetails=failure_details(outcome.error_type or "Exception", outcome.reason or "",
                                                        outcome.details))
        else:
            done = event(EventType.TASK_COMPLETED, TaskScheduledId=task_id, Result=outcome.result)
        meta = dict(item.meta, allocates=bool(retry) and outcome.failed)
        self.engine.deliver_if_current(instance_id, item, StoredEvent(event=done, meta=meta))

    def _client_binding(self, name: str) -> str | None:
        """The durableClient binding, for an activity that declares one."""
        activity = self.engine.index.activity(name)
        if activity is None or activity.client_param is None or self.engine.client_binding is None:
            return None
        return self.engine.client_binding()

    def _arm_timer(self, instance_id: str, task_id: int, item: StoredEvent) -> None:
        fire_at = isoparse(item.event["FireAt"])
        delay = max(0.0, (fire_at - utcnow()).total_seconds())
        fired = event(EventType.TIMER_FIRED, TimerId=task_id, FireAt=item.event["FireAt"])
        retry = item.meta.get("retry")
        meta: dict[str, Any] = {}
        if retry:
            meta = {"retry": retry, "allocates": retry["attempt"] < int(retry["options"]["maxNumberOfAttempts"])}

        def fire() -> None:
            self._timers.get(instance_id, {}).pop(task_id, None)
            self.engine.deliver_if_current(instance_id, item, StoredEvent(event=fired, meta=meta))

        loop = asyncio.get_running_loop()
        self._timers.setdefault(instance_id, {})[task_id] = loop.call_later(delay, fire)

    def cancel_timers(self, instance_id: str) -> None:
        for handle in self._timers.pop(instance_id, {}).values():
            handle.cancel()

    def _start_child(self, row: InstanceRow, item: StoredEvent) -> None:
        child_id, task_id = item.event["InstanceId"], item.event["EventId"]
        child = self.engine.store.get_instance(child_id)
        if child is not None and child.status in TERMINAL and child.parent_id == row.instance_id \
                and child.parent_task_id == task_id:
            message = self.engine.parent_message(child, failed=child.status != "Completed")
            if message is not None:
                self.engine.deliver_if_current(row.instance_id, item, message[1])
            return
        try:
            self.engine.start(item.event["Name"], item.event.get("Input"), child_id, (row.instance_id, task_id))
        except (UnknownFunction, PayloadTooLarge) as exc:
            reason = str(exc.args[0]) if exc.args else str(exc)
            failed = event(EventType.SUB_ORCHESTRATION_FAILED, TaskScheduledId=task_id, Reason=reason, Details=None,
                           FailureDetails=failure_details(type(exc).__name__, reason))
            meta = dict(item.meta, allocates=bool(item.meta.get("retry")))
            self.engine.deliver(row.instance_id, StoredEvent(event=failed, meta=meta))
