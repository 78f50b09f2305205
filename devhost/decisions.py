"""Pure decisions of an episode: ordering, sequence ids, retries, replay checks.

Nothing here does I/O; the engine feeds history in and commits what comes out. Ids
follow the SDK's numbering, including the hidden timer/reschedule tasks of the
-WithRetry APIs, so completions always find their task.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dateutil.parser import isoparse

from .history import ActionType, EventType, OrchestratorReply, event, fmt_time, utcnow
from .state import InstanceRow, StoredEvent

SCHEDULING = (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_CREATED,
              EventType.TIMER_CREATED)
COMPLETIONS = {EventType.TASK_COMPLETED: "TaskScheduledId", EventType.TASK_FAILED:
               "TaskScheduledId", EventType.SUB_ORCHESTRATION_COMPLETED: "TaskScheduledId",
               EventType.SUB_ORCHESTRATION_FAILED: "TaskScheduledId",
               EventType.TIMER_FIRED: "TimerId"}
FAILURES = (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_FAILED)
UNSUPPORTED = (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY, ActionType.CALL_HTTP)


class OrchestrationError(Exception):
    """An instance failed for a reason the host detected (e.g. non-determinism)."""


def action_key(action: dict[str, Any]) -> dict[str, Any]:
    """What must match on replay: the action type and the name it targets."""
    name = action.get("functionName") or action.get("externalEventName") or ""
    return {"type": int(action["actionType"]), "name": name}


def next_sequence(history: list[dict[str, Any]]) -> int:
    """The next free sequence id: one past the highest scheduling EventId."""
    ids = [e["EventId"] for e in history if e["EventType"] in SCHEDULING]
    return max(ids, default=-1) + 1


def outstanding(history: list[StoredEvent], inbox: list[StoredEvent]) -> list[StoredEvent]:
    """Scheduled work whose completion is neither in history nor waiting in the inbox."""
    done = {e.event.get(COMPLETIONS[EventType(e.event["EventType"])])
            for e in history + inbox if e.event["EventType"] in COMPLETIONS}
    return [e for e in history if e.event["EventType"] in SCHEDULING
            and e.event["EventId"] not in done]


def play_order(item: StoredEvent) -> int:
    """ExecutionStarted first, then retry bookkeeping, then everything else.

    The SDK allocates ids for retry timers/reschedules while it reads those events;
    playing them before any event that can resume user code keeps the host's
    numbering and the SDK's identical.
    """
    if item.event["EventType"] == EventType.EXECUTION_STARTED:
        return 0
    return 1 if item.meta.get("allocates") else 2


def episode_time(past: list[dict[str, Any]]) -> datetime:
    """Now, but never before the previous episode (current_utc_datetime is monotonic)."""
    now = utcnow()
    starts = [isoparse(e["Timestamp"]) for e in past
              if e["EventType"] == EventType.ORCHESTRATOR_STARTED]
    if starts and now <= starts[-1]:
        now = starts[-1] + timedelta(microseconds=1)
    return now


def retry_step(item: StoredEvent, sequence: list[int], now: datetime) -> list[StoredEvent]:
    """The hidden tasks of a -WithRetry chain: a timer after each failure, a re-run."""
    retry = item.meta.get("retry")
    if not retry or not item.meta.get("allocates"):
        return []
    task_id = sequence[0]
    sequence[0] += 1
    kind = EventType(item.event["EventType"])
    if kind in FAILURES:
        fire_at = now + timedelta(milliseconds=retry["first_ms"])
        timer = event(EventType.TIMER_CREATED, task_id, at=now, FireAt=fmt_time(fire_at))
        return [StoredEvent(event=timer, meta={"retry": retry})]
    retry = dict(retry, attempt=retry["attempt"] + 1)
    return [schedule_event(retry["action"], task_id, now, retry)]


def schedule_event(action: dict[str, Any], task_id: int, now: datetime,
                   retry: dict[str, Any] | None, parent: str = "") -> StoredEvent:
    """The history event that records an activity or sub-orchestration being scheduled."""
    meta = {"retry": retry} if retry else {}
    kind = ActionType(action["actionType"])
    if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
        return StoredEvent(event=event(EventType.TASK_SCHEDULED, task_id, at=now,
                                       Name=action["functionName"],
                                       Input=action.get("input")), meta=meta)
    child = action.get("instanceId") or (retry or {}).get("child") \
        or f"{parent}:{task_id:04X}"
    if retry:
        retry["child"] = child
    return StoredEvent(event=event(EventType.SUB_ORCHESTRATION_CREATED, task_id, at=now,
                                   Name=action["functionName"], Input=action.get("input"),
                                   InstanceId=child), meta=meta)


def new_actions(row: InstanceRow, reply: OrchestratorReply,
                sequence: list[int]) -> list[StoredEvent]:
    """Check replayed actions against history, then record the new ones."""
    actions = [a for a in reply.flat_actions()
               if a.get("actionType") != ActionType.CONTINUE_AS_NEW]
    seen = row.actions_seen
    for i, (old, action) in enumerate(zip(seen, actions, strict=False)):
        new = action_key(action)
        if new != old:
            raise OrchestrationError(
                f"Non-deterministic workflow detected: action #{i} was "
                f"{ActionType(old['type']).name} '{old['name']}' in the history but "
                f"the orchestrator now schedules {ActionType(new['type']).name} "
                f"'{new['name']}'.")
    if len(actions) < len(seen) and not reply.is_done and not reply.error:
        missing = seen[len(actions)]
        raise OrchestrationError(
            f"Non-deterministic workflow detected: the history has action #{len(actions)} "
            f"{ActionType(missing['type']).name} '{missing['name']}' but the orchestrator "
            "no longer schedules it.")
    now = utcnow()
    recorded: list[StoredEvent] = []
    for action in actions[len(seen):]:
        kind = ActionType(action["actionType"])
        seen.append(action_key(action))
        if kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            continue
        if kind in UNSUPPORTED:
            raise OrchestrationError(f"The devhost does not support {kind.name} actions.")
        task_id = sequence[0]
        sequence[0] += 1
        if kind == ActionType.CREATE_TIMER:
            recorded.append(StoredEvent(event=event(
                EventType.TIMER_CREATED, task_id, at=now, FireAt=action["fireAt"])))
            continue
        retry = None
        if "retryOptions" in action:
            options = action["retryOptions"]
            retry = {"first_ms": options["firstRetryIntervalInMilliseconds"],
                     "max": options["maxNumberOfAttempts"], "attempt": 1,
                     "action": action}
        recorded.append(schedule_event(action, task_id, now, retry, row.instance_id))
    return recorded
