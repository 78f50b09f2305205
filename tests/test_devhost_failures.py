"""Failure messages and shapes as the Durable extension words them."""
from __future__ import annotations

from pathlib import Path

from devhost.history import EventType
from tests.devhost_apps.failures_app import app
from tests.devhost_apps.harness import run_to_end, with_host


def test_activity_failure_reason_as_the_orchestrator_sees_it(tmp_path: Path) -> None:
    async def body(host):
        status = await run_to_end(host, "CatchesCharge")
        return status, host.history(status.instance_id)

    status, history = with_host(tmp_path, body, app=app)
    assert status.output.startswith("Activity function 'Charge' failed: ValueError: cannot charge -5")
    failed = next(e for e in history if e["EventType"] == EventType.TASK_FAILED)
    assert failed["Reason"] == "Activity function 'Charge' failed: ValueError: cannot charge -5"
    assert failed["FailureDetails"]["ErrorType"] == "ValueError"
    assert failed["FailureDetails"]["ErrorMessage"] == failed["Reason"]
    assert "failures_app.py" in failed["Details"]


def test_orchestrator_and_sub_orchestrator_failures(tmp_path: Path) -> None:
    async def body(host):
        parent = await run_to_end(host, "Order", instance_id="order-1")
        child = await host.get_status("order-1-checkout")
        return parent, child, host.history("order-1")

    parent, child, history = with_host(tmp_path, body, app=app)
    assert child.runtime_status == "Failed"
    assert child.output == "Orchestrator function 'Checkout' failed: the basket is empty"
    assert parent.runtime_status == "Completed"
    assert parent.output.startswith("Orchestrator function 'Checkout' failed: the basket is empty")
    failed = next(e for e in history if e["EventType"] == EventType.SUB_ORCHESTRATION_FAILED)
    assert failed["Reason"] == child.output and failed["FailureDetails"]["ErrorMessage"] == child.output


def test_calling_an_unregistered_activity_fails_the_orchestration(tmp_path: Path) -> None:
    status = with_host(tmp_path, lambda host: run_to_end(host, "CallsMissing"), app=app)
    assert status.runtime_status == "Failed"
    assert status.output == (
        "Orchestrator function 'CallsMissing' failed: The function 'Refund' doesn't exist, is disabled, or is not "
        "an activity function. Additional info: The following are the known activity functions: 'Charge'.")
