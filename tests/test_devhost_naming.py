"""Functions are named by their trigger bindings, as the Durable extension names them, and
the sample-style HTTP starter works end to end through create_check_status_response."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from devhost.functions import discover
from tests.devhost_apps import hello_cities
from tests.devhost_apps.harness import WAIT, run_to_end, serving, stop, until, with_host

APP = hello_cities.myApp
GREETINGS = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_binding_names_not_python_names() -> None:
    index = discover(APP)
    assert set(index.orchestrators) == {"HelloCities"}
    assert set(index.activities) == {"SayHello"}
    assert index.orchestrator("hellocities") is index.orchestrator("HelloCities"), "names compare without case"
    assert index.orchestrator("hello_cities") is None
    assert index.activity("say_hello") is None


def test_start_new_by_orchestration_name(tmp_path: Path) -> None:
    async def body(host):
        status = await run_to_end(host, "HelloCities")
        with pytest.raises(LookupError) as unknown:
            await host.start_new("hello_cities")
        return status, str(unknown.value)

    status, unknown = with_host(tmp_path, body, app=APP)
    assert status.runtime_status == "Completed" and status.output == GREETINGS
    assert "The function 'hello_cities' doesn't exist, is disabled, or is not an orchestrator function" in unknown
    assert "The following are the known orchestrator functions: 'HelloCities'." in unknown


def test_http_starter_links_carry_the_system_key(tmp_path: Path) -> None:
    async def body(host):
        server, origin = await serving(host)
        try:
            async with httpx.AsyncClient(timeout=WAIT) as http:
                started = await http.post(f"{origin}/api/orchestrators/HelloCities")
                links = started.json()

                async def finished():
                    response = await http.get(links["statusQueryGetUri"])
                    return response.json() if response.status_code == 200 else None

                final = await until(finished, "the orchestration to finish")
                no_key = await http.get(links["statusQueryGetUri"].split("&code=")[0])
                return started, links, final, no_key, host.keys.system_key, host.config.hub_name
        finally:
            await stop(server)

    started, links, final, no_key, system_key, hub = with_host(tmp_path, body, app=APP)
    assert started.status_code == 202
    assert started.headers["Location"] == links["statusQueryGetUri"]
    assert links["statusQueryGetUri"].endswith(f"?taskHub={hub}&connection=Storage&code={system_key}")
    assert f"/runtime/webhooks/durabletask/instances/{links['id']}/terminate?reason={{text}}&" in links["terminatePostUri"]
    assert set(links) == {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "rewindPostUri",
                          "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri"}
    assert final["runtimeStatus"] == "Completed" and final["name"] == "HelloCities"
    assert final["output"] == GREETINGS
    assert no_key.status_code == 401 and "system key" in no_key.json()["Message"]
