"""History events, the orchestrator context JSON, and the orchestrator's reply.

These are the wire shapes of the Durable extension's out-of-process protocol, so an
orchestrator running here sees exactly what it would see under Azure.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from pydantic import BaseModel, Field

OUT_OF_PROC_MARKER = "$OutOfProcData$:"


class EventType(IntEnum):
    """DTFx history event types (the numbers the SDK's HistoryEventType expects)."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_CREATED = 7
    SUB_ORCHESTRATION_COMPLETED = 8
    SUB_ORCHESTRATION_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC_EVENT = 17
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


class ActionType(IntEnum):
    """Action types the SDK emits (azure.durable_functions ActionType)."""

    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


COMPOUND_ACTIONS = (ActionType.WHEN_ANY, ActionType.WHEN_ALL)


def utcnow() -> datetime:
    """The host clock, always timezone-aware UTC."""
    return datetime.now(UTC)


def fmt_time(moment: datetime) -> str:
    """ISO-8601 with a Z suffix, as the extension writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(kind: EventType, event_id: int = -1, at: datetime | None = None,
          **fields: Any) -> dict[str, Any]:
    """One history event; IsPlayed is set when the event is sent, not here."""
    return {"EventType": int(kind), "EventId": event_id, "IsPlayed": False,
            "Timestamp": fmt_time(at or utcnow()), **fields}


def execution_started(name: str, input_text: str | None, instance_id: str,
                      parent: dict[str, Any] | None, at: datetime) -> dict[str, Any]:
    """ExecutionStarted: the SDK reads Version from it, so it must be present."""
    return event(EventType.EXECUTION_STARTED, at=at, Name=name, Input=input_text,
                 Version="", OrchestrationInstance={"InstanceId": instance_id},
                 ParentInstance=parent)


def failure_details(error_type: str, message: str, stack: str | None = None) -> dict[str, Any]:
    """FailureDetails as DTFx attaches them to failed tasks and sub-orchestrations."""
    return {"ErrorType": error_type, "ErrorMessage": message, "StackTrace": stack,
            "InnerFailure": None, "IsNonRetriable": False}


class OrchestratorReply(BaseModel):
    """What one episode returned: the orchestrator state of the out-of-proc schema."""

    is_done: bool = Field(False, alias="isDone")
    actions: list[list[dict[str, Any]]] = Field(default_factory=list)
    output: Any = None
    error: str | None = None
    custom_status: Any = Field(None, alias="customStatus")
    schema_version: int = Field(0, alias="schemaVersion")

    def flat_actions(self) -> list[dict[str, Any]]:
        """Every atomic action in scheduling order, unwrapping WhenAll/WhenAny."""
        flat: list[dict[str, Any]] = []

        def walk(action: dict[str, Any]) -> None:
            if action.get("actionType") in COMPOUND_ACTIONS:
                for child in action.get("compoundActions", []):
                    walk(child)
            else:
                flat.append(action)

        for group in self.actions:
            for action in group:
                walk(action)
        return flat


def build_context(history: list[dict[str, Any]], input_text: str | None, instance_id: str,
                  parent_instance_id: str | None, replayed: int) -> str:
    """The context JSON of one episode; the first `replayed` events are marked played."""
    sent = [dict(e, IsPlayed=i < replayed) for i, e in enumerate(history)]
    return json.dumps({
        "history": sent,
        "input": input_text,
        "instanceId": instance_id,
        "isReplaying": replayed > 0,
        "parentInstanceId": parent_instance_id,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
    })


def parse_reply(handler_result: str | None, error: str | None) -> OrchestratorReply:
    """Read the state JSON, either returned or carried in the raised error's message."""
    if error is None:
        return OrchestratorReply.model_validate_json(handler_result or "{}")
    head, marker, tail = error.partition(OUT_OF_PROC_MARKER)
    if not marker:
        return OrchestratorReply(error=error)
    reply = OrchestratorReply.model_validate_json(tail)
    if not reply.error:
        reply.error = head.strip()
    return reply
