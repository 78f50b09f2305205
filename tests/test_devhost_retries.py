"""RetryOptions in full: the delay before each retry follows the first interval, the
backoff coefficient and the max interval; the retry timeout stops further attempts."""
from __future__ import annotations

from pathlib import Path

from dateutil.parser import isoparse

from devhost.history import EventType
from tests.devhost_apps import retries_app
from tests.devhost_apps.harness import run_to_end, with_host


def retry_waits_ms(history: list[dict]) -> list[int]:
    """How long each retry timer waited: FireAt minus the time it was created."""
    timers = [e for e in history if e["EventType"] == EventType.TIMER_CREATED]
    return [round((isoparse(t["FireAt"]) - isoparse(t["Timestamp"])).total_seconds() * 1000) for t in timers]


def run(tmp_path: Path, instance_id: str, **options):
    async def body(host):
        status = await run_to_end(host, "Retried", {"options": options}, instance_id=instance_id)
        return status, host.history(instance_id)

    return with_host(tmp_path, body, app=retries_app.app)


def test_backoff_coefficient_multiplies_the_interval(tmp_path: Path) -> None:
    status, history = run(tmp_path, "backoff", first_retry_interval_in_milliseconds=50, max_number_of_attempts=4,
                          backoff_coefficient=2)
    assert status.output == "Activity function 'AlwaysFails' failed: ConnectionError: attempt 4 for backoff failed "
    assert retries_app.calls["backoff"] == 4
    assert retry_waits_ms(history) == [50, 100, 200, 400]


def test_max_interval_caps_the_wait(tmp_path: Path) -> None:
    status, history = run(tmp_path, "capped", first_retry_interval_in_milliseconds=50, max_number_of_attempts=3,
                          backoff_coefficient=3, max_retry_interval_in_milliseconds=100)
    assert retries_app.calls["capped"] == 3
    assert retry_waits_ms(history) == [50, 100, 100]


def test_retry_timeout_stops_attempts(tmp_path: Path) -> None:
    status, history = run(tmp_path, "timeout", first_retry_interval_in_milliseconds=50, max_number_of_attempts=5,
                          retry_timeout_in_milliseconds=1)
    assert status.runtime_status == "Completed"
    assert status.output == "Activity function 'AlwaysFails' failed: ConnectionError: attempt 1 for timeout failed "
    assert retries_app.calls["timeout"] == 1, "no attempt starts once the retry timeout has passed"
