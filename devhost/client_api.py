"""The HTTP side: the app's HTTP triggers under /api and the Durable HTTP API.

The SDK's DurableOrchestrationClient talks to `rpcBaseUrl` and users follow the
management links of `create_check_status_response`; both land on the routes below,
which mirror the Durable extension's webhook API.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func
from aiohttp import web

from .functions import HttpFunction
from .host import InstanceStatus
from .triggers import WEBHOOK_PATH, invoke, management_urls

if TYPE_CHECKING:
    from .host import EmbeddedHost

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IN_PROGRESS = ("Pending", "Running", "ContinuedAsNew")


def input_text(raw: bytes) -> str | None:
    """A request body as orchestration input JSON text.

    The SDK posts the input already JSON-encoded, as a JSON string; a user posts a plain
    JSON body. Both end up as the same input text.
    """
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return json.dumps(raw.decode("utf-8", errors="replace"))
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            return json.dumps(value)
    return json.dumps(value)


def status_json(status: InstanceStatus, show_input: bool = True) -> dict[str, Any]:
    """The instance status document of the Durable HTTP API."""
    doc = {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": status.runtime_status,
        "input": status.input if show_input else None,
        "customStatus": status.custom_status,
        "output": status.output,
        "createdTime": status.created_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastUpdatedTime": status.last_updated_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return doc


def aiohttp_route(route: str) -> list[str]:
    """Functions route templates ({id:int}, {id?}, {*rest}) as aiohttp paths."""
    route = route.strip("/")
    route = re.sub(r"\{\*(\w+)\}", r"{\1:.*}", route)
    route = re.sub(r"\{(\w+):(?!\.\*)[^}]*\}", r"{\1}", route)
    optional = re.search(r"/?\{(\w+)\?\}$", route)
    if optional:
        with_param = route[:optional.start()] + "/{" + optional.group(1) + "}"
        return ["/api/" + route[:optional.start()], "/api/" + with_param.lstrip("/")]
    return ["/api/" + route]


class DurableApi:
    """Handlers for `{origin}/runtime/webhooks/durabletask/...`."""

    def __init__(self, host: EmbeddedHost) -> None:
        self.host = host

    def add_routes(self, app: web.Application) -> None:
        base = WEBHOOK_PATH
        app.router.add_post(base + "orchestrators/{name}", self.start)
        app.router.add_post(base + "orchestrators/{name}/{instance_id}", self.start)
        app.router.add_get(base + "instances/", self.list_all)
        app.router.add_get(base + "instances/{instance_id}", self.status)
        app.router.add_delete(base + "instances/{instance_id}", self.purge)
        app.router.add_post(base + "instances/{instance_id}/terminate", self.terminate)
        app.router.add_post(base + "instances/{instance_id}/raiseEvent/{event}", self.raise_event)
        for verb in ("rewind", "restart", "suspend", "resume"):
            app.router.add_post(base + "instances/{instance_id}/" + verb, self.unsupported)

    @staticmethod
    def _origin(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    async def start(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            instance_id = self.host.start_new_text(name, input_text(await request.read()),
                                                   request.match_info.get("instance_id"))
        except KeyError as exc:
            message = str(exc.args[0])
            return web.json_response({"Message": message, "ExceptionMessage": message},
                                     status=400)
        links = management_urls(self._origin(request), instance_id)
        return web.json_response(links, status=202,
                                 headers={"Location": links["statusQueryGetUri"]})

    async def status(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        status = await self.host.get_status(instance_id)
        if status is None:
            return web.json_response({"message": f"No instance '{instance_id}'"}, status=404)
        doc = status_json(status, request.query.get("showInput", "true").lower() != "false")
        if request.query.get("showHistory", "").lower() == "true":
            doc["historyEvents"] = self.host.history(instance_id)
        code = 202 if status.runtime_status in IN_PROGRESS else 200
        headers = {"Location": str(request.url)} if code == 202 else {}
        return web.json_response(doc, status=code, headers=headers)

    async def list_all(self, request: web.Request) -> web.Response:
        statuses = await self.host.list_instances()
        return web.json_response([status_json(s) for s in statuses])

    async def purge(self, request: web.Request) -> web.Response:
        deleted = await self.host.purge(request.match_info["instance_id"])
        if not deleted:
            return web.json_response({"instancesDeleted": 0}, status=404)
        return web.json_response({"instancesDeleted": deleted})

    async def terminate(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        if await self.host.get_status(instance_id) is None:
            return web.json_response({"message": "not found"}, status=404)
        done = await self.host.terminate(instance_id, request.query.get("reason", ""))
        return web.json_response(None, status=202 if done else 410)

    async def raise_event(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        if await self.host.get_status(instance_id) is None:
            return web.json_response({"message": "not found"}, status=404)
        data = input_text(await request.read())
        done = self.host.engine.raise_event(instance_id, request.match_info["event"], data)
        return web.json_response(None, status=202 if done else 410)

    async def unsupported(self, request: web.Request) -> web.Response:
        return web.json_response({"message": "Not supported by the devhost"}, status=501)


def http_handler(host: EmbeddedHost, function: HttpFunction) -> Handler:
    """Translate aiohttp <-> azure.functions HttpRequest/HttpResponse for one trigger."""
    async def handle(request: web.Request) -> web.StreamResponse:
        if function.methods and request.method not in function.methods:
            raise web.HTTPMethodNotAllowed(request.method, list(function.methods))
        req = func.HttpRequest(
            method=request.method, url=str(request.url), headers=dict(request.headers),
            params=dict(request.query), route_params=dict(request.match_info),
            body=await request.read())
        result = await invoke(host, function, req)
        if result is None:
            return web.Response(status=204)
        if not isinstance(result, func.HttpResponse):
            result = func.HttpResponse(str(result))
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-length"}
        if result.mimetype and "content-type" not in {k.lower() for k in headers}:
            headers["Content-Type"] = f"{result.mimetype}; charset={result.charset}"
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)

    return handle


def build_app(host: EmbeddedHost) -> web.Application:
    app = web.Application(client_max_size=256 * 1024 * 1024)
    DurableApi(host).add_routes(app)
    for function in host.index.http:
        handler = http_handler(host, function)
        for path in aiohttp_route(function.route):
            # One route per method, so functions sharing a route (GET and POST /api/queries)
            # each get their own requests, as in Azure.
            for method in function.methods or ("*",):
                app.router.add_route(method, path, handler)
    return app


async def start_server(host: EmbeddedHost, bind: str, port: int) -> tuple[web.AppRunner, str]:
    """Listen on bind:port (0 picks a free port); returns the runner and its origin."""
    runner = web.AppRunner(build_app(host), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, bind, port).start()
    bound_port = runner.addresses[0][1]
    shown = "127.0.0.1" if bind in ("0.0.0.0", "localhost", "") else bind
    return runner, f"http://{shown}:{bound_port}"


async def run_server(host: EmbeddedHost, bind: str, port: int,
                     ready: asyncio.Event | None = None) -> None:
    """Serve the public endpoint until cancelled, like `func start`."""
    runner, host.public_url = await start_server(host, bind, port)
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
