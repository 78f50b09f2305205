"""Payload limits: what the Durable Task Scheduler (1 MiB per message) and the extension
(16 KB of custom status) refuse in Azure is refused here too, with a message that says so."""
from __future__ import annotations

from pathlib import Path

import pytest

from devhost.limits import MAX_MESSAGE_BYTES, PayloadTooLarge
from tests.devhost_apps.harness import run_to_end, with_host
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
