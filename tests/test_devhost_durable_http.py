"""context.call_http against a loopback HTTP API: plain calls, JSON content, the 202
polling pattern (Location + Retry-After), managed-identity tokens, and failures."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from devhost.history import EventType
from tests.devhost_apps.harness import run_to_end, with_host
from tests.devhost_apps.http_calls_app import app
from tests.support.identity_server import IdentityServer


class Api:
    """A small HTTP API with a long-running operation behind a 202 status endpoint."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_get("/job", self.job)
        self.app.router.add_get("/job/status/{n}", self.job_status)
        self.app.router.add_post("/echo", self.echo)
        self.app.router.add_get("/secure", self.secure)

    async def _record(self, request: web.Request) -> None:
        self.requests.append({"method": request.method, "path": request.path, "headers": dict(request.headers),
                              "body": (await request.read()).decode()})

    async def job(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"state": "queued"}, status=202,
                                 headers={"Location": "/job/status/1", "Retry-After": "0"})

    async def job_status(self, request: web.Request) -> web.Response:
        await self._record(request)
        n = int(request.match_info["n"])
        if n < 3:
            return web.json_response({"state": "running"}, status=202,
                                     headers={"Location": f"/job/status/{n + 1}", "Retry-After": "0"})
        return web.json_response({"state": "done", "polls": n})

    async def echo(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"type": request.content_type, "body": json.loads(await request.read())},
                                 status=201)

    async def secure(self, request: web.Request) -> web.Response:
        await self._record(request)
        if request.headers.get("Authorization") != "Bearer loopback-token":
            return web.json_response({"error": "no token"}, status=401)
        return web.json_response({"caller": "identity"})


def with_api(tmp_path: Path, scenario) -> tuple[Any, Api]:
    api = Api()

    async def body(host):
        runner = web.AppRunner(api.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            return await scenario(host, f"http://127.0.0.1:{runner.addresses[0][1]}")
        finally:
            await runner.cleanup()

    return with_host(tmp_path, body, app=app), api


def test_202_is_polled_until_the_operation_finishes(tmp_path: Path) -> None:
    async def scenario(host, base):
        status = await run_to_end(host, "GetStatus", f"{base}/job")
        return status, host.history(status.instance_id)

    (status, history), api = with_api(tmp_path, scenario)
    assert status.output == {"status": 200, "content": {"state": "done", "polls": 3}}
    assert [r["path"] for r in api.requests] == ["/job", "/job/status/1", "/job/status/2", "/job/status/3"]
    scheduled = [e for e in history if e["EventType"] == EventType.TASK_SCHEDULED]
    assert [e["Name"] for e in scheduled] == ["BuiltIn::HttpActivity"]
    assert json.loads(scheduled[0]["Input"])[0]["method"] == "GET"


def test_json_content_and_headers_are_sent(tmp_path: Path) -> None:
    (status, api) = with_api(tmp_path, lambda host, base: run_to_end(host, "PostJson", f"{base}/echo"))
    assert status.output == {"status": 201, "content": {"type": "application/json", "body": {"order": 7}}}


def test_managed_identity_token_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with IdentityServer() as identity:
        for name, value in identity.environment.items():
            monkeypatch.setenv(name, value)
        status, api = with_api(tmp_path, lambda host, base: run_to_end(host, "WithToken", f"{base}/secure"))
    assert status.output == {"status": 200, "content": {"caller": "identity"}}
    assert identity.resources == ["https://management.core.windows.net"]


def test_a_connection_failure_fails_the_call(tmp_path: Path) -> None:
    async def scenario(host, base):
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return await run_to_end(host, "Unreachable", f"http://127.0.0.1:{port}/")

    status, _ = with_api(tmp_path, scenario)
    assert status.runtime_status == "Completed"
    assert status.output["failed"].startswith("ConnectError")
