"""A durableClient binding works on an activity trigger as on any other: the activity gets a
client that starts and reads instances, in the host process and in worker processes alike."""
from __future__ import annotations

from pathlib import Path

import pytest

from devhost.config import HostConfig
from tests.devhost_apps.harness import WAIT, run_to_end, with_host

APP = "tests.devhost_apps.client_activity_app:app"


@pytest.mark.parametrize("process_count", [1, 2])
def test_an_activity_with_a_client_binding_starts_and_reads_instances(tmp_path: Path, process_count: int) -> None:
    async def body(host):
        supervisor = await run_to_end(host, "Supervisor", instance_id="sup-1")
        child = await host.wait_for_completion("sup-1-child", timeout=WAIT)
        return supervisor, child

    supervisor, child = with_host(tmp_path, body, app=APP, config=HostConfig(process_count=process_count))
    assert supervisor.runtime_status == "Completed"
    assert supervisor.output == {"child": "sup-1-child", "supervisor_seen_as": "Running"}
    assert child.runtime_status == "Completed" and child.output == "child of sup-1"
