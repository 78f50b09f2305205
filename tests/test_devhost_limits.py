"""Payload limits: what the Durable Task Scheduler (1 MiB per message) and the extension
(16 KB of custom status) refuse in Azure is refused here too, with a message that says so."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from devhost.limits import MAX_MESSAGE_BYTES, PayloadTooLarge
from tests.devhost_apps.harness import WAIT, run_to_end, serving, stop, with_host
from tests.devhost_apps.payloads_app import app


def test_activity_results_up_to_the_limit_pass_and_larger_ones_fail(tmp_path: Path) -> None:
    async def body(host):
        fits = await run_to_end(host, "BigResult", MAX_MESSAGE_BYTES - 2)
        too_big = await run_to_end(host, "BigResult", MAX_MESSAGE_BYTES)
        return fits, too_big

    fits, too_big = with_host(tmp_path, body, app=app)
    assert fits.output == {"length": MAX_MESSAGE_BYTES - 2}
    assert too_big.output["failed"].startswith(
        "Activity function 'Blob' failed: The output of activity 'Blob' is 1,048,578 bytes, more than the "
        "1,048,576 bytes the Durable Task Scheduler accepts in one message.")


def test_custom_status_over_16_kb_fails_the_orchestration(tmp_path: Path) -> None:
    async def body(host):
        return await run_to_end(host, "LoudStatus", 8 * 1024), await run_to_end(host, "LoudStatus", 9 * 1024)

    fits, too_big = with_host(tmp_path, body, app=app)
    assert fits.runtime_status == "Completed"
    assert too_big.runtime_status == "Failed"
    assert too_big.output == ("Orchestrator function 'LoudStatus' failed: The UTF-16 size of the JSON-serialized "
                              "payload must not exceed 16 KB. The current payload size is 18 KB.")


def test_an_orchestration_input_over_the_limit_is_refused_at_start(tmp_path: Path) -> None:
    async def body(host):
        with pytest.raises(PayloadTooLarge, match="orchestration input is 1,048,579 bytes"):
            await host.start_new("Passthrough", "z" * (MAX_MESSAGE_BYTES + 1))
        return await host.list_instances()

    assert with_host(tmp_path, body, app=app) == []


def test_an_orchestration_output_over_the_limit_fails_it(tmp_path: Path) -> None:
    async def body(host):
        return await run_to_end(host, "BigOutput", MAX_MESSAGE_BYTES - 2), await run_to_end(host, "BigOutput", MAX_MESSAGE_BYTES)

    fits, too_big = with_host(tmp_path, body, app=app)
    assert fits.runtime_status == "Completed" and len(fits.output) == MAX_MESSAGE_BYTES - 2
    assert too_big.runtime_status == "Failed"
    assert too_big.output.startswith(
        "Orchestrator function 'BigOutput' failed: The orchestration output is 1,048,578 bytes, more than the "
        "1,048,576 bytes the Durable Task Scheduler accepts in one message.")


def test_an_activity_input_over_the_limit_fails_the_orchestration_that_sends_it(tmp_path: Path) -> None:
    async def body(host):
        return (await run_to_end(host, "BigActivityInput", 1000),
                await run_to_end(host, "BigActivityInput", MAX_MESSAGE_BYTES))

    fits, too_big = with_host(tmp_path, body, app=app)
    assert fits.runtime_status == "Completed" and fits.output == 1000
    assert too_big.runtime_status == "Failed"
    assert too_big.output.startswith("Orchestrator function 'BigActivityInput' failed: The input of call_activity 'Length' is 1,048,578 bytes")


def test_event_data_over_the_limit_is_refused_and_the_instance_keeps_waiting(tmp_path: Path) -> None:
    async def body(host):
        server, origin = await serving(host)
        try:
            iid = await host.start_new("AwaitData", instance_id="waits-1")
            with pytest.raises(PayloadTooLarge, match="data of event 'data' is 1,048,579 bytes"):
                await host.raise_event(iid, "data", "d" * (MAX_MESSAGE_BYTES + 1))
            url = f"{origin}/runtime/webhooks/durabletask/instances/{iid}/raiseEvent/data"
            async with httpx.AsyncClient(timeout=WAIT) as http:
                refused = await http.post(url, params={"code": host.keys.system_key}, json="d" * (MAX_MESSAGE_BYTES + 1))
            waiting = (await host.get_status(iid)).runtime_status
            assert await host.raise_event(iid, "data", "d" * 1000)
            return refused, waiting, await host.wait_for_completion(iid, timeout=WAIT)
        finally:
            await stop(server)

    refused, waiting, done = with_host(tmp_path, body, app=app)
    assert refused.status_code == 413 and "1,048,579 bytes" in refused.text, refused.text
    assert waiting == "Running"
    assert done.runtime_status == "Completed" and done.output == 1000
