"""What the Azure Monitor exporter writes for the RLM's telemetry, caught by an ingestion endpoint
on loopback: the tables and customDimensions docs/monitoring.md's KQL (and the workbook's) read."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ingestion() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An Application Insights ingestion endpoint (`/v2.1/track`) that keeps every envelope."""
    envelopes: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            data = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.headers.get("content-encoding") == "gzip":
                data = gzip.decompress(data)
            if self.path.startswith("/v2.1/track"):
                envelopes.extend(json.loads(data))
            reply = json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", envelopes
    finally:
        server.shutdown()
        server.server_close()


def test_spans_and_metrics_land_where_the_kql_reads_them(ingestion: tuple[str, list[dict[str, Any]]]) -> None:
    endpoint, envelopes = ingestion
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_", "PYTHON_APPLICATIONINSIGHTS"))
    }
    env |= {
        "PYTHONPATH": str(ROOT),
        "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint={endpoint}",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    }
    probe = subprocess.run([sys.executable, "-m", "tests.support.appinsights_probe"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=90)  # fmt: skip
    assert probe.returncode == 0, probe.stderr

    def items(kind: str) -> list[dict[str, Any]]:
        return [
            e["data"]["baseData"] | {"tags": e["tags"]} for e in envelopes if e["name"] == f"Microsoft.ApplicationInsights.{kind}"
        ]

    (query,) = [r for r in items("Request") if r["name"] == "invoke_agent rlm"]  # table `requests`
    assert query["success"] is False and query["duration"].startswith("0.00:00:0")
    assert query["properties"]["rlm.depth"] == "0" and query["properties"]["rlm.outcome"] == "failed"
    assert query["properties"]["rlm.instance_id"] == "probe-1" and query["properties"]["rlm.sub_queries"] == "3"
    assert query["tags"]["ai.operation.id"] == "0af7651916cd43dd8448eb211c80319c"  # operation_Id is the trace id
    dependencies = {d["name"]: d for d in items("RemoteDependency")}  # table `dependencies`
    chat = dependencies["chat gpt-x"]
    assert chat["type"] == "GenAI | azure.ai.openai"
    assert (
        chat["properties"]["gen_ai.response.model"] == "gpt-x-2026" and chat["properties"]["gen_ai.usage.input_tokens"] == "120"
    )
    cell = dependencies["execute_tool repl"]
    assert cell["type"] == "InProc" and cell["properties"]["rlm.cell.pending"] == "3"
    assert dependencies["rlm.execute"]["tags"]["ai.operation.parentId"] == f"{query['id']}"
    metrics = {
        (m["metrics"][0]["name"], m["properties"].get("gen_ai.token.type")): m for m in items("Metric")
    }  # table `customMetrics`
    tokens = metrics[("rlm.model.tokens", "input")]
    assert tokens["metrics"][0]["value"] == 120 and tokens["properties"]["gen_ai.request.model"] == "gpt-x"
    assert metrics[("gen_ai.client.token.usage", "output")]["metrics"][0]["value"] == 30
    assert metrics[("rlm.fan_out.width", None)]["metrics"][0]["max"] == 3
    assert metrics[("rlm.queries.finished", None)]["properties"] == {"rlm.depth": "0", "rlm.outcome": "failed"}
