"""Discovery and the out-of-process wire shapes, checked against the real SDK."""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.durable_functions.models.actions.ActionType import ActionType as SdkActionType
from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType

from devhost import load_local_settings
from devhost.durable_api import input_text
from devhost.functions import discover
from devhost.history import ActionType, EventType, build_context, event, execution_started, parse_reply
from devhost.routes import RouteTable, safe_path
from tests.devhost_apps.toy_app import app

T0 = datetime(2025, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def test_discovery_finds_every_kind_of_function() -> None:
    index = discover(app)
    assert {"sequence", "fan_out", "sub_fan_out", "retrying", "timer"} <= set(index.orchestrators)
    assert index.activities["hello"].is_async is False
    assert index.activities["async_echo"].is_async is True
    assert index.activities["hello"].input_name == "name"
    http = {f.name: f for f in index.http}
    assert http["http_start"].route == "orchestrators/{name}"
    assert http["http_start"].methods == ("POST",)
    assert http["http_start"].auth_level == "anonymous"
    assert http["http_start"].client_param == "client"
    assert http["ping"].client_param is None
    assert http["http_enqueue"].queue_outputs == {"out": "work"}
    assert index.queues["work"].name == "queue_start" and index.queues["work"].client_param
    assert index.queues["fragile"].client_param is None
    assert "http_start" in index.client_functions
    assert discover(app) is index, "the SDK allows indexing an app only once"


def test_event_and_action_numbers_match_the_sdk() -> None:
    for ours in EventType:
        assert HistoryEventType[ours.name.replace("SUB_ORCHESTRATION", "SUB_ORCHESTRATION_INSTANCE")
                                ] == ours
    for ours in ActionType:
        assert SdkActionType[ours.name] == ours


def history_prefix() -> list[dict]:
    return [event(EventType.ORCHESTRATOR_STARTED, at=T0),
            execution_started("sequence", '["A"]', "i1", None, T0)]


def test_context_json_is_read_by_the_sdk() -> None:
    text = build_context(history_prefix(), '["A"]', "i1", "parent-1", replayed=0)
    body = json.loads(text)
    assert body["upperSchemaVersion"] == 1 and body["upperSchemaVersionNew"] == 2
    context = DurableOrchestrationContext.from_json(text)
    assert context.instance_id == "i1" and context.parent_instance_id == "parent-1"
    assert context.get_input() == ["A"]
    assert context.current_utc_datetime == T0
    assert context.is_replaying is False


def test_replayed_events_are_marked_played() -> None:
    history = history_prefix() + [event(EventType.ORCHESTRATOR_STARTED, at=T0)]
    sent = json.loads(build_context(history, None, "i1", None, replayed=2))["history"]
    assert [e["IsPlayed"] for e in sent] == [True, True, False]


def test_fan_out_reply_is_one_when_all_with_flat_children() -> None:
    handler = discover(app).orchestrators["fan_out"].handler
    history = [event(EventType.ORCHESTRATOR_STARTED, at=T0),
               execution_started("fan_out", '{"group": "g", "n": 3}', "i1", None, T0)]
    reply = parse_reply(handler(build_context(history, '{"group": "g", "n": 3}', "i1", None, 0)),
                        None)
    assert reply.schema_version >= 1 and not reply.is_done
    assert [a["actionType"] for a in reply.actions[0]] == [ActionType.WHEN_ALL]
    flat = reply.flat_actions()
    assert [a["functionName"] for a in flat] == ["rendezvous"] * 3
    assert json.loads(flat[2]["input"]) == {"group": "g", "n": 3, "i": 2}


def test_orchestrator_failure_is_parsed_from_out_of_proc_data() -> None:
    handler = discover(app).orchestrators["raises"].handler
    history = [event(EventType.ORCHESTRATOR_STARTED, at=T0),
               execution_started("raises", None, "i1", None, T0),
               event(EventType.TASK_SCHEDULED, 0, at=T0, Name="hello", Input='"before"'),
               event(EventType.ORCHESTRATOR_COMPLETED, at=T0),
               event(EventType.ORCHESTRATOR_STARTED, at=T0),
               event(EventType.TASK_COMPLETED, at=T0, TaskScheduledId=0, Result='"Hello"')]
    with pytest.raises(Exception) as failure:
        handler(build_context(history, None, "i1", None, replayed=4))
    reply = parse_reply(None, str(failure.value))
    assert reply.error == "orchestrator gave up"
    assert [a["functionName"] for a in reply.flat_actions()] == ["hello"]


def test_route_templates_match_like_aspnet() -> None:
    table: RouteTable[str] = RouteTable("api")
    for template in ("items/{id:int}", "items/{name}", "items/special", "files/{*path}", "ping/{who?}"):
        table.add(template, template)

    def best(path: str) -> tuple[str, dict[str, str]] | None:
        found = table.match(safe_path(path))
        return found[0] if found else None

    assert best("/api/items/42") == ("items/{id:int}", {"id": "42"})
    assert best("/api/items/abc") == ("items/{name}", {"name": "abc"})
    assert best("/api/ITEMS/special") == ("items/special", {})
    assert best("/api/files/a/b.txt") == ("files/{*path}", {"path": "a/b.txt"})
    assert best("/api/ping") == ("ping/{who?}", {})
    assert best("/api/ping/ada") == ("ping/{who?}", {"who": "ada"})
    assert best("/api/items/a%2Fb") == ("items/{name}", {"name": "a%2Fb"}), "an encoded slash stays in the value"
    assert best("/api/items/%2e%2e") is None, "a dot segment walks up, out of the route"
    assert best("/api/files/x/..%2F..%2Fsecret") == ("files/{*path}", {"path": "x/..%2F..%2Fsecret"})
    assert best("/api/elsewhere") is None


def test_request_bodies_become_input_text() -> None:
    assert input_text(b"") is None
    assert input_text(json.dumps(json.dumps({"a": 1})).encode()) == '{"a": 1}'
    assert input_text(b'{"a": 1}') == '{"a": 1}'
    assert input_text(b'"plain words"') == '"plain words"'
    with pytest.raises(ValueError):
        input_text(b"plain words")


def test_local_settings_do_not_override_environment(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVHOST_KEEP", "mine")
    monkeypatch.delenv("DEVHOST_NEW", raising=False)
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "DEVHOST_KEEP": "theirs", "DEVHOST_NEW": "added"}}))
    applied = load_local_settings(settings)
    assert applied == {"DEVHOST_NEW": "added"}
    assert os.environ["DEVHOST_KEEP"] == "mine" and os.environ["DEVHOST_NEW"] == "added"
    monkeypatch.delenv("DEVHOST_NEW")
    assert load_local_settings(tmp_path / "missing.json") == {}
