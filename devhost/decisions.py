"""Pure decisions of an episode: ordering, sequence ids, retries, replay checks.

Nothing here does I/O; the engine feeds history in and commits what comes out. Ids
follow the SDK's numbering, including the hidden timer/reschedule tasks of the
-WithRetry APIs, so completions always find their task.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from dateutil.parser import isoparse

from .functions import FunctionIndex, unknown_function_message
from .history import ActionType, EventType, OrchestratorReply, event, fmt_time, utcnow
from .limits import PayloadTooLarge, check_message
from .retry import RetryPolicy
from .state import InstanceRow, StoredEvent

HTTP_ACTIVITY = "BuiltIn::HttpActivity"
SCHEDULING = (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_CREATED,
              EventType.TIMER_CREATED, EventType.EVENT_SENT)
AWAITED = (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_CREATED, EventType.TIMER_CREATED)
COMPLETIONS = {EventType.TASK_COMPLETED: "TaskScheduledId", EventType.TASK_FAILED:
               "TaskScheduledId", EventType.SUB_ORCHESTRATION_COMPLETED: "TaskScheduledId",
               EventType.SUB_ORCHESTRATION_FAILED: "TaskScheduledId",
               EventType.TIMER_FIRED: "TimerId"}
FAILURES = (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_FAILED)
ACTIVITY_ACTIONS = (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY)
CHILD_ACTIONS = (ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY)
ENTITY_ACTIONS = (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY)


class OrchestrationError(Exception):
    """An instance failed for a reason the host detected (e.g. non-determinism)."""


def action_key(action: dict[str, Any]) -> dict[str, Any]:
    """What must match on replay: the action type and the name it targets."""
    kind = int(action["actionType"])
    if kind in ENTITY_ACTIONS:
        name = action.get("instanceId")
    elif kind == ActionType.CALL_HTTP:
        name = (action.get("httpRequest") or {}).get("uri")
    else:
        name = action.get("functionName") or action.get("externalEventName")
    return {"type": kind, "name": name or ""}


def next_sequence(history: list[dict[str, Any]]) -> int:
    """The next free sequence id: one past the highest scheduling EventId."""
    ids = [e["EventId"] for e in history if e["EventType"] in SCHEDULING]
    return max(ids, default=-1) + 1


def outstanding(history: list[StoredEvent], inbox: list[StoredEvent]) -> list[StoredEvent]:
    """Awaited work whose completion is neither in history nor waiting in the inbox."""
    done = {e.event.get(COMPLETIONS[EventType(e.event["EventType"])])
            for e in history + inbox if e.event["EventType"] in COMPLETIONS}
    return [e for e in history if e.event["EventType"] in AWAITED and e.event["EventId"] not in done]


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
    """The hidden tasks of a -WithRetry chain: a timer after each failure, a re-run after
    each timer. The timer waits as the policy says; once the retry timeout has passed it
    fires at once and the attempts left fail without running."""
    retry = item.meta.get("retry")
    if not retry or not item.meta.get("allocates"):
        return []
    task_id = sequence[0]
    sequence[0] += 1
    kind = EventType(item.event["EventType"])
    if kind in FAILURES:
        policy = RetryPolicy.from_action(retry["options"])
        wait = policy.delay(retry["attempt"], isoparse(retry["first_at"]), now)
        failure = {k: item.event.get(k) for k in ("Reason", "Details", "FailureDetails")}
        retry = dict(retry, expired=retry.get("expired") or wait is None, failure=failure)
        fire_at = now + (wait or timedelta(0))
        timer = event(EventType.TIMER_CREATED, task_id, at=now, FireAt=fmt_time(fire_at))
        return [StoredEvent(event=timer, meta={"retry": retry})]
    retry = dict(retry, attempt=retry["attempt"] + 1)
    return [schedule_event(retry["action"], task_id, now, retry)]


def schedule_event(action: dict[str, Any], task_id: int, now: datetime,
                   retry: dict[str, Any] | None, parent: str = "") -> StoredEvent:
    """The history event that records an activity or sub-orchestration being scheduled."""
    meta = {"retry": retry} if retry else {}
    kind = ActionType(action["actionType"])
    if kind in ACTIVITY_ACTIONS:
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


def entity_request(row: InstanceRow, action: dict[str, Any], task_id: int, now: datetime) -> StoredEvent:
    """EventSent for call_entity / signal_entity: the SDK reads the request id from its
    Input and matches the entity's response (an EventRaised named by that id)."""
    signal = ActionType(action["actionType"]) == ActionType.SIGNAL_ENTITY
    request = {"op": action.get("operation") or "", "signal": signal, "input": json.dumps(action.get("input")),
               "id": str(uuid.uuid4()), "parent": row.instance_id}
    sent = event(EventType.EVENT_SENT, task_id, at=now, InstanceId=action["instanceId"],
                 Name=request["op"], Input=json.dumps(request))
    return StoredEvent(event=sent, meta={"entity": action["instanceId"]})


def http_request(action: dict[str, Any], task_id: int, now: datetime) -> StoredEvent:
    """Durable HTTP is the extension's built-in activity, with the request as its input."""
    scheduled = event(EventType.TASK_SCHEDULED, task_id, at=now, Name=HTTP_ACTIVITY,
                      Input=json.dumps([action.get("httpRequest") or {}]))
    return StoredEvent(event=scheduled, meta={"http": True})


def _check_target(index: FunctionIndex, kind: ActionType, action: dict[str, Any]) -> None:
    """An action naming an unknown function fails the orchestration, as in Azure."""
    if kind in ACTIVITY_ACTIONS and index.activity(action["functionName"]) is None:
        raise OrchestrationError(unknown_function_message("activity", action["functionName"], list(index.activities)))
    if kind in CHILD_ACTIONS and index.orchestrator(action["functionName"]) is None:
        raise OrchestrationError(
            unknown_function_message("orchestrator", action["functionName"], list(index.orchestrators)))
    if kind in ENTITY_ACTIONS:
        name = str(action.get("instanceId", "")).lstrip("@").split("@", 1)[0]
        if index.entity(name) is None:
            raise OrchestrationError(unknown_function_message("entity", name, list(index.entities)))


def _check_replay(seen: list[dict[str, Any]], actions: list[dict[str, Any]], reply: OrchestratorReply) -> None:
    for i, (old, action) in enumerate(zip(seen, actions, strict=False)):
        new = action_key(action)
        if new["type"] != old["type"] or new["name"] != old["name"]:
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


def new_actions(row: InstanceRow, reply: OrchestratorReply, sequence: list[int], index: FunctionIndex,
                now: datetime | None = None) -> list[StoredEvent]:
    """Check replayed actions against history, then record the new ones."""
    actions = [a for a in reply.flat_actions()
               if a.get("actionType") != ActionType.CONTINUE_AS_NEW]
    seen = row.actions_seen
    _check_replay(seen, actions, reply)
    now = now or utcnow()
    recorded: list[StoredEvent] = []
    for action in actions[len(seen):]:
        kind = ActionType(action["actionType"])
        entry = action_key(action)
        seen.append(entry)
        if kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            continue
        _check_target(index, kind, action)
        task_id = entry["id"] = sequence[0]
        sequence[0] += 1
        if kind == ActionType.CREATE_TIMER:
            recorded.append(StoredEvent(event=event(EventType.TIMER_CREATED, task_id, at=now, FireAt=action["fireAt"])))
        elif kind in ENTITY_ACTIONS:
            recorded.append(entity_request(row, action, task_id, now))
        elif kind == ActionType.CALL_HTTP:
            recorded.append(http_request(action, task_id, now))
        elif kind in ACTIVITY_ACTIONS or kind in CHILD_ACTIONS:
            retry = None
            if "retryOptions" in action:
                RetryPolicy.from_action(action["retryOptions"])
                retry = {"options": action["retryOptions"], "attempt": 1, "first_at": fmt_time(now),
                         "action": action}
            recorded.append(schedule_event(action, task_id, now, retry, row.instance_id))
        else:
            raise OrchestrationError(f"The devhost does not understand {kind.name} actions.")
        try:
            check_message(recorded[-1].event.get("Input"), f"input of {kind.name.lower()} '{entry['name']}'")
        except PayloadTooLarge as exc:
            raise OrchestrationError(str(exc)) from None
    return recorded


def cancelled_timers(row: InstanceRow, reply: OrchestratorReply) -> set[int]:
    """Task ids of the timers the orchestrator cancelled (`timer.cancel()`)."""
    actions = [a for a in reply.flat_actions() if a.get("actionType") != ActionType.CONTINUE_AS_NEW]
    return {seen["id"] for seen, action in zip(row.actions_seen, actions, strict=False)
            if action.get("actionType") == ActionType.CREATE_TIMER and action.get("isCanceled")
            and "id" in seen}
