"""The HTTP server's own behaviour, over real sockets: keys as Azure demands them, JSON for
its own refusals (404, 405, 413, 414, 500), a body limit enforced while the body streams
in, and route values that never smuggle a slash or a dot segment."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from devhost.config import HostConfig
from tests.devhost_apps.harness import WAIT, serving, stop, with_host
from tests.devhost_apps.server_app import app

LIMIT = 1024 * 1024


def with_server(tmp_path: Path, scenario, **options: Any) -> Any:
    async def body(host):
        server, origin = await serving(host)
        try:
            async with httpx.AsyncClient(base_url=origin, timeout=WAIT) as http:
                return await scenario(host, http, origin)
        finally:
            await stop(server)

    return with_host(tmp_path, body, app=app, config=HostConfig(max_request_bytes=LIMIT), **options)


def test_function_keys_and_the_system_key(tmp_path: Path) -> None:
    async def scenario(host, http, origin):
        keys = host.keys
        durable = "/runtime/webhooks/durabletask/instances/none"
        rpc = await http.get(f"{host.base_url}/durabletask/instances/none")
        return {
            "no key": (await http.get("/api/items/1")).status_code,
            "function key": (await http.get("/api/items/1", params={"code": keys.function_key})).status_code,
            "header": (await http.get("/api/items/1", headers={"x-functions-key": keys.function_key})).status_code,
            "system key on a function": (await http.get("/api/items/1", params={"code": keys.system_key})).status_code,
            "master key": (await http.get("/api/items/1", params={"code": keys.master_key})).status_code,
            "anonymous": (await http.get("/api/open/x")).status_code,
            "admin with function key": (await http.post("/api/admin/reset", params={"code": keys.function_key})).status_code,
            "admin with master key": (await http.post("/api/admin/reset", params={"code": keys.master_key})).status_code,
            "durable no key": (await http.get(durable)).status_code,
            "durable function key": (await http.get(durable, params={"code": keys.function_key})).status_code,
            "durable system key": (await http.get(durable, params={"code": keys.system_key})).status_code,
            "rpc loopback": rpc.status_code,
            "401 body": (await http.get("/api/items/1")).json(),
        }

    seen = with_server(tmp_path, scenario, enforce_keys=True)
    assert seen["no key"] == 401 and "x-functions-key" in seen["401 body"]["error"]
    assert seen["function key"] == seen["header"] == seen["master key"] == seen["anonymous"] == 200
    assert seen["system key on a function"] == 401
    assert (seen["admin with function key"], seen["admin with master key"]) == (401, 200)
    assert (seen["durable no key"], seen["durable function key"], seen["durable system key"]) == (401, 401, 404)
    assert seen["rpc loopback"] == 404, "the loopback RPC endpoint needs no key, as in Azure"


def test_keys_persist_in_the_state_dir(tmp_path: Path) -> None:
    first = with_host(tmp_path, lambda host: asyncio.sleep(0, host.keys), app=app)
    second = with_host(tmp_path, lambda host: asyncio.sleep(0, host.keys), app=app)
    assert first == second and len(first.function_key) >= 40
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600


def test_framework_errors_are_json(tmp_path: Path) -> None:
    async def scenario(host, http, origin):
        return {
            "unknown": await http.get("/api/nowhere"),
            "method": await http.delete("/api/open/x"),
            "long url": await http.get("/api/open/" + "a" * 5000),
            "function raised": await http.get("/api/boom"),
            "durable unknown": await http.get("/runtime/webhooks/durabletask/nowhere",
                                              params={"code": host.keys.system_key}),
        }

    seen = with_server(tmp_path, scenario)
    for name, status in (("unknown", 404), ("method", 405), ("long url", 414), ("function raised", 500),
                         ("durable unknown", 404)):
        response = seen[name]
        assert response.status_code == status, name
        assert response.headers["Content-Type"].startswith("application/json"), name
        assert response.json()["error"], name
    assert seen["method"].headers["Allow"] == "GET"
    assert "the function broke" not in seen["function raised"].text, "no traceback leaks to the caller"


def test_body_limit_is_enforced_while_streaming(tmp_path: Path) -> None:
    async def scenario(host, http, origin):
        fits = await http.post("/api/upload", content=b"x" * LIMIT)

        async def chunks():
            for _ in range(4):
                yield b"y" * (LIMIT // 2)

        streamed = await http.post("/api/upload", content=chunks())
        port = int(origin.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 314572800\r\n\r\n")
        await writer.drain()
        announced = await asyncio.wait_for(reader.read(4096), WAIT)
        writer.close()
        await writer.wait_closed()
        return fits, streamed, announced

    fits, streamed, announced = with_server(tmp_path, scenario)
    assert fits.json() == {"bytes": LIMIT}
    assert streamed.status_code == 413 and streamed.json()["error"].startswith("The request body is larger")
    assert announced.startswith(b"HTTP/1.1 413"), "a declared 300 MB body is refused before any of it arrives"


def test_route_values_keep_encoded_slashes_and_drop_dot_segments(tmp_path: Path) -> None:
    async def scenario(host, http, origin):
        code = {"code": host.keys.function_key}
        return {
            "encoded slash": (await http.get("/api/items/a%2Fb", params=code)).json(),
            "encoded dots": await http.get("/api/items/..%2F..%2Fkeys.json", params=code),
            "dot segment": await http.get("/api/items/%2e%2e", params=code),
            "catch-all": (await http.get("/api/open/css/site.css")).json(),
            "catch-all escape": await http.get("/api/open/css/%2e%2e/%2e%2e/%2e%2e/keys.json"),
        }

    seen = with_server(tmp_path, scenario)
    assert seen["encoded slash"] == {"id": "a%2Fb"}
    assert seen["encoded dots"].json() == {"id": "..%2F..%2Fkeys.json"}
    assert seen["dot segment"].status_code == 404 and seen["dot segment"].json()["error"]
    assert seen["catch-all"] == {"path": "css/site.css"}
    assert seen["catch-all escape"].status_code == 404, "dot segments walk out of the route, not up a folder"


def test_the_rlm_app_answers_odd_ids_with_json_4xx(rlm_env: Path) -> None:
    """Encoded slashes and dot segments in ids reach the real app's routes as harmless
    values (or no route at all): never a 500, always a JSON body."""
    from function_app import app as rlm_app

    paths = ["/api/queries/a%2Fb", "/api/queries/..%2F..%2Fkeys.json", "/api/queries/a%2Fb/trace",
             "/api/queries/%2e%2e/trace", "/api/batches/..%2F..%2Fx/results", "/api/queries/x%00y"]

    async def body(host):
        server, origin = await serving(host)
        try:
            async with httpx.AsyncClient(base_url=origin, timeout=WAIT) as http:
                return [await http.get(path) for path in paths] + [await http.post("/api/queries/a%2Fb/cancel")]
        finally:
            await stop(server)

    for response in with_host(rlm_env, body, app=rlm_app):
        assert 400 <= response.status_code < 500, (response.url, response.status_code)
        assert response.headers["Content-Type"].startswith("application/json") and response.json()
