"""host.json is honoured: the task hub name (with %setting% references), the activity and
orchestrator concurrency limits, queue retry settings and the HTTP route prefix."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from devhost.config import HostConfig, HostConfigError
from tests.devhost_apps import hostjson_app
from tests.devhost_apps.harness import WAIT, run_to_end, serving, stop, until, with_host

HOST_JSON = {
    "version": "2.0",
    "extensions": {
        "durableTask": {"hubName": "%ORDERS_HUB%", "maxConcurrentActivityFunctions": 2},
        "queues": {"maxDequeueCount": 2, "batchSize": 1, "newBatchThreshold": 0, "visibilityTimeout": "00:00:00.1"},
        "http": {"routePrefix": "v1"},
    },
}


@pytest.fixture
def config(tmp_path: Path) -> HostConfig:
    (tmp_path / "host.json").write_text(json.dumps(HOST_JSON), encoding="utf-8")
    return HostConfig.load(tmp_path, {"ORDERS_HUB": "OrdersHub"})


def test_settings_are_read(config: HostConfig) -> None:
    assert config.hub_name == "OrdersHub"
    assert config.max_concurrent_activities == 2
    assert (config.queues.max_dequeue_count, config.queues.concurrency) == (2, 1)
    assert config.queues.visibility_timeout.total_seconds() == 0.1
    assert config.route_prefix == "v1"


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text('{"extensions": {"durableTask": {"maxConcurrentActivityFunctions": 0}}}')
    with pytest.raises(HostConfigError, match="max_concurrent_activities"):
        HostConfig.load(tmp_path, {})
    (tmp_path / "host.json").write_text("{not json")
    with pytest.raises(HostConfigError, match="is not readable JSON"):
        HostConfig.load(tmp_path, {})


def test_activity_concurrency_is_capped(tmp_path: Path, config: HostConfig) -> None:
    status = with_host(tmp_path / "state", lambda host: run_to_end(host, "Crowd"), app=hostjson_app.app,
                       config=config)
    assert status.output == list(range(6))
    assert hostjson_app.running["most"] == 2


@pytest.mark.parametrize("cap", [1, 2])
def test_orchestrator_concurrency_is_capped(tmp_path: Path, cap: int) -> None:
    """Episodes that would run side by side (the second one lets the first go on) run one at a
    time under a cap of 1."""
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"durableTask": {"maxConcurrentOrchestratorFunctions": cap}}}))
    config = HostConfig.load(tmp_path, {})
    hostjson_app.episodes["most"] = 0

    async def body(host):
        ids = [await host.start_new("Sociable", instance_id=f"sociable-{n}") for n in range(2)]
        return [await host.wait_for_completion(iid, timeout=WAIT) for iid in ids]

    statuses = with_host(tmp_path / "state", body, app=hostjson_app.app, config=config)
    assert [s.output for s in statuses] == ["sociable-0", "sociable-1"]
    assert config.max_concurrent_orchestrators == cap and hostjson_app.episodes["most"] == cap


def test_queue_retries_then_poison_and_the_route_prefix(tmp_path: Path, config: HostConfig) -> None:
    async def body(host):
        host.enqueue("jobs", "job-1")
        await until(lambda: host.queue_messages("jobs-poison"), "the poison queue")
        server, origin = await serving(host)
        try:
            async with httpx.AsyncClient(timeout=WAIT) as http:
                prefixed = await http.get(f"{origin}/v1/hello")
                default = await http.get(f"{origin}/api/hello")
        finally:
            await stop(server)
        return host.queue_messages("jobs-poison"), prefixed, default, json.loads(host.client_binding())

    poison, prefixed, default, binding = with_host(tmp_path / "state", body, app=hostjson_app.app, config=config)
    assert poison == ["job-1"] and hostjson_app.dequeues == [1, 2]
    assert prefixed.text == "hello" and default.status_code == 404
    assert binding["taskHubName"] == "OrdersHub"
    assert "taskHub=OrdersHub" in binding["managementUrls"]["statusQueryGetUri"]
