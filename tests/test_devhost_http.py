"""HTTP triggers, the Durable HTTP API and local queues, over real sockets."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.devhost_apps.harness import WAIT, read_log, serving, stop, with_host


async def poll(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Follow statusQueryGetUri until the instance is no longer in progress."""
    for _ in range(int(WAIT * 20)):
        async with session.get(url) as response:
            body = await response.json()
            if response.status == 200:
                return body
            assert response.status == 202
        await asyncio.sleep(0.05)
    raise AssertionError("instance never finished")


def test_http_starter_and_status_query_links(tmp_path: Path) -> None:
    async def body(host):
        server, origin = await serving(host)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{origin}/api/orchestrators/sequence",
                                        json=["Ada", "Bob"]) as response:
                    assert response.status == 202
                    links = await response.json()
                    assert response.headers["Location"] == links["statusQueryGetUri"]
                assert links["statusQueryGetUri"].startswith(origin + "/runtime/webhooks/")
                assert links["id"] in links["terminatePostUri"]
                final = await poll(session, links["statusQueryGetUri"])
                async with session.get(links["statusQueryGetUri"] + "&showHistory=true") as r:
                    history = (await r.json())["historyEvents"]
                return final, history
        finally:
            await stop(server)

    final, history = with_host(tmp_path, body)
    assert final["runtimeStatus"] == "Completed"
    assert final["input"] == ["Ada", "Bob"]
    assert final["output"]["greetings"] == ["Hello Ada", "Hello Bob"]
    assert history[0]["EventType"] == "ExecutionStarted" and history[0]["FunctionName"] == "sequence"


def test_plain_http_trigger_with_route_params(tmp_path: Path) -> None:
    async def body(host):
        server, origin = await serving(host)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{origin}/api/ping/ada") as r:
                    named = (r.status, r.headers["Content-Type"], await r.json())
                async with session.get(f"{origin}/api/ping?who=bob") as r:
                    query = await r.json()
                async with session.post(f"{origin}/api/ping") as r:
                    wrong_method = r.status
            return named, query, wrong_method
        finally:
            await stop(server)

    named, query, wrong_method = with_host(tmp_path, body)
    assert named[0] == 200 and named[1].startswith("application/json")
    assert named[2] == {"pong": "ada"}
    assert query == {"pong": "bob"}
    assert wrong_method == 405


def test_client_raise_event_and_management_api(tmp_path: Path) -> None:
    async def body(host):
        server, origin = await serving(host)
        api = f"{origin}/runtime/webhooks/durabletask"
        key = {"code": host.keys.system_key}
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{api}/orchestrators/waits/h1", params=key) as r:
                    assert r.status == 202
                while (await host.get_status("h1")).custom_status != "waiting":
                    await host.engine.wait_changed("h1", 1.0)
                async with session.post(f"{origin}/api/events/h1/approve", json="ok") as r:
                    assert r.status == 200
                done = await poll(session, f"{api}/instances/h1?code={key['code']}")
                async with session.post(f"{api}/orchestrators/waits/h2", params=key) as r:
                    assert r.status == 202
                async with session.post(f"{api}/instances/h2/terminate", params={"reason": "stop", **key}) as r:
                    terminate = r.status
                await host.wait_for_completion("h2", timeout=WAIT)  # termination is asynchronous, as in Azure
                async with session.post(f"{api}/instances/h2/terminate", params={"reason": "stop", **key}) as r:
                    again = r.status
                async with session.get(f"{api}/instances/nope", params=key) as r:
                    missing = r.status
                async with session.post(f"{api}/orchestrators/nope", params=key) as r:
                    unknown = (r.status, await r.json())
                async with session.delete(f"{api}/instances/h2", params=key) as r:
                    purged = await r.json()
            return done, terminate, again, missing, unknown, purged, await host.get_status("h2")
        finally:
            await stop(server)

    done, terminate, again, missing, unknown, purged, gone = with_host(tmp_path, body)
    assert done["output"] == {"approved": "ok"}
    assert (terminate, again, missing) == (202, 410, 404)
    assert unknown[0] == 400 and "nope" in unknown[1]["ExceptionMessage"]
    assert purged == {"instancesDeleted": 1} and gone is None


def test_queue_trigger_starts_orchestration_through_durable_client(tmp_path: Path) -> None:
    async def body(host):
        host.enqueue("work", json.dumps({"id": "from-queue", "names": ["Q"]}))
        while await host.get_status("from-queue") is None:
            await asyncio.sleep(0.02)
        return await host.wait_for_completion("from-queue", timeout=WAIT)

    status = with_host(tmp_path, body)
    assert status.output["greetings"] == ["Hello Q"]


def test_queue_output_binding_feeds_queue_trigger(tmp_path: Path) -> None:
    async def body(host):
        server, origin = await serving(host)
        try:
            message = json.dumps({"id": "via-output", "names": ["O"]})
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{origin}/api/enqueue", data=message) as r:
                    assert r.status == 202
            while await host.get_status("via-output") is None:
                await asyncio.sleep(0.02)
            return await host.wait_for_completion("via-output", timeout=WAIT)
        finally:
            await stop(server)

    assert with_host(tmp_path, body).output["greetings"] == ["Hello O"]


def test_poison_message_after_max_dequeue_count(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("DEVHOST_TEST_LOG", str(log))

    async def body(host):
        host.enqueue("fragile", "bad message")
        while not host.queue_messages("fragile-poison"):
            await asyncio.sleep(0.02)
        return host.queue_messages("fragile"), host.queue_messages("fragile-poison")

    remaining, poison = with_host(tmp_path / "state", body)
    assert remaining == [] and poison == ["bad message"]
    assert [e["key"] for e in read_log(log) if e["kind"] == "dequeue"] == [1, 2, 3, 4, 5]

    async def reopen(host):
        return host.queue_messages("fragile-poison")

    assert with_host(tmp_path / "state", reopen) == ["bad message"]
