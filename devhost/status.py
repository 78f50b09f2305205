"""How instances look to callers: the Python-side status model and the Durable HTTP API's
status document, including `showHistory` formatted as the extension formats it."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dateutil.parser import isoparse
from pydantic import BaseModel

from .history import EventType
from .state import TERMINAL, InstanceRow

IN_PROGRESS = ("Pending", "Running", "ContinuedAsNew", "Suspended")


class InstanceStatus(BaseModel):
    """An orchestration instance as callers see it (payloads decoded from JSON)."""

    instance_id: str
    name: str
    runtime_status: str
    input: Any = None
    output: Any = None
    custom_status: Any = None
    created_time: datetime
    last_updated_time: datetime
    parent: str | None = None

    @classmethod
    def from_row(cls, row: InstanceRow) -> InstanceStatus:
        return cls(instance_id=row.instance_id, name=row.name, runtime_status=row.status,
                   input=_token(row.input), output=_token(row.output),
                   custom_status=_token(row.custom_status), created_time=isoparse(row.created),
                   last_updated_time=isoparse(row.updated), parent=row.parent_id)

    @property
    def is_terminal(self) -> bool:
        return self.runtime_status in TERMINAL


def _token(text: str | None) -> Any:
    """A stored payload as a JSON value; text that is not JSON (a terminate reason) as is."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def status_json(status: InstanceStatus, show_input: bool = True) -> dict[str, Any]:
    """The instance status document of the Durable HTTP API."""
    return {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": status.runtime_status,
        "input": status.input if show_input else None,
        "customStatus": status.custom_status,
        "output": status.output,
        "createdTime": status.created_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastUpdatedTime": status.last_updated_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


_PAIRED = {EventType.TASK_COMPLETED: EventType.TASK_SCHEDULED, EventType.TASK_FAILED: EventType.TASK_SCHEDULED,
           EventType.SUB_ORCHESTRATION_COMPLETED: EventType.SUB_ORCHESTRATION_CREATED,
           EventType.SUB_ORCHESTRATION_FAILED: EventType.SUB_ORCHESTRATION_CREATED}
_WITH_RESULT = (EventType.TASK_COMPLETED, EventType.SUB_ORCHESTRATION_COMPLETED, EventType.EXECUTION_COMPLETED)
_STATUS_NAMES = {0: "Running", 1: "Completed", 2: "ContinuedAsNew", 3: "Failed", 4: "Canceled",
                 5: "Terminated", 6: "Pending", 7: "Suspended"}


def history_view(events: list[dict[str, Any]], show_output: bool, show_input: bool) -> list[dict[str, Any]]:
    """`historyEvents` as the extension returns them for `showHistory=true`.

    Event types become names; a completion absorbs its scheduling event (function name,
    scheduled time, input); orchestrator episode markers and ids disappear; results
    appear only with `showHistoryOutput=true`.
    """
    scheduled: dict[tuple[int, int], tuple[int, dict[str, Any]]] = {}
    dropped: set[int] = set()
    view: list[dict[str, Any]] = []
    for index, raw in enumerate(events):
        kind = EventType(raw["EventType"])
        item = {k: v for k, v in raw.items() if k not in ("EventId", "IsPlayed", "FailureDetails")}
        item["EventType"] = _event_name(kind)
        if kind in (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_CREATED):
            scheduled[(kind, raw["EventId"])] = (index, raw)
            item.pop("Version", None)
        elif kind in _PAIRED:
            origin = scheduled.get((_PAIRED[kind], raw.get("TaskScheduledId", -1)))
            item.pop("TaskScheduledId", None)
            if origin is not None:
                dropped.add(origin[0])
                item["ScheduledTime"] = origin[1]["Timestamp"]
                item["FunctionName"] = origin[1].get("Name")
                if show_input:
                    item["Input"] = origin[1].get("Input")
        elif kind == EventType.EXECUTION_STARTED:
            item["FunctionName"] = item.pop("Name", None)
            for hidden in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                item.pop(hidden, None)
        elif kind == EventType.EXECUTION_COMPLETED:
            item["OrchestrationStatus"] = _STATUS_NAMES.get(raw.get("OrchestrationStatus"), raw.get("OrchestrationStatus"))
        elif kind == EventType.TIMER_FIRED:
            item.pop("TimerId", None)
        elif kind in (EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED):
            dropped.add(index)
        if kind in _WITH_RESULT:
            if show_output:
                item["Result"] = _token(item.get("Result"))
            else:
                item.pop("Result", None)
        if not show_input:
            item.pop("Input", None)
        view.append(item)
    return [item for index, item in enumerate(view) if index not in dropped]


def _event_name(kind: EventType) -> str:
    """DTFx event names: ExecutionStarted, TaskScheduled, SubOrchestrationInstanceCreated, ..."""
    words = kind.name.replace("SUB_ORCHESTRATION", "SUB_ORCHESTRATION_INSTANCE").split("_")
    return "".join(w.capitalize() for w in words)
