"""Run in a process of its own (one global provider per process): configure telemetry the
Application Insights way, emit one of each span and metric the RLM emits, flush, exit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opentelemetry import metrics, trace

from shared.models import CellResult, PendingRequest, QueryResult, TokenUsage
from shared.payloads import TextRef
from shared.step_models import FinishInput, RlmTask
from shared.telemetry import spans
from shared.telemetry.context import TraceParent
from shared.telemetry.setup import configure


def main() -> None:
    assert configure() == "azure-monitor"
    task = RlmTask(
        question=TextRef(text="q"), corpus_id="c" * 64, root_id="probe-1", max_depth=1, max_iterations=3,
        sub_max_iterations=2, truncate_chars=2000, root_model="gpt-x", sub_model="gpt-x",
        trace=TraceParent(trace_id="0af7651916cd43dd8448eb211c80319c"),
    )  # fmt: skip
    usage = TokenUsage(model_calls=1, prompt_tokens=120, completion_tokens=30)

    @spans.traced("execute")
    def execute(payload: dict) -> None:
        with spans.model_call("azure", "gpt-x", "https://example.openai.azure.com/") as call:
            call.record("gpt-x-2026", usage)
        with spans.cell_run("probe-1-1", "execute") as run:
            pending = [PendingRequest(id=f"r{k}", kind="rlm", question="q") for k in range(3)]
            run.record(CellResult(cell_id="probe-1-1", status="suspended", stdout="x" * 10, pending=pending))

    execute({"task": task.model_dump(), "instance_id": "probe-1", "step": 3, "iteration": 1})
    now = datetime.now(UTC)
    finish = FinishInput(
        task=task, instance_id="probe-1", answer=TextRef(text="a"), outcome="failed", iterations=1, used_sections=[],
        usage={"0": usage}, sub_queries=3, started_at=(now - timedelta(seconds=5)).isoformat(), ended_at=now.isoformat(),
        error="it broke",
    )  # fmt: skip
    result = QueryResult(
        answer="a",
        failed=True,
        iterations=1,
        instance_id="probe-1",
        trace="traces/probe-1/",
        duration_seconds=5,
        error="it broke",
    )
    spans.query_finished(finish, result)
    trace.get_tracer_provider().force_flush()
    metrics.get_meter_provider().force_flush()


if __name__ == "__main__":
    main()
