"""The HTTP listeners: the public one (the app's HTTP triggers and the keyed Durable
webhooks, like `func start`) and the loopback RPC one the durableClient binding uses.

The server's own refusals are JSON like everything else: an unknown route (404), a
method a trigger does not take (405), a body over 100 MB (413, counted while it streams
in, never buffered first) and a URL over 4 KB (414).
"""
from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .config import HostConfig
from .durable_api import DurableApi
from .errors import StartError
from .functions import HttpFunction
from .invocation import HttpRequestData, TriggerCall, TriggerResult
from .keys import HostKeys
from .links import RPC_PATH, WEBHOOK_PATH
from .routes import RouteTable, safe_path

log = logging.getLogger("devhost.http")
Invoke = Callable[[TriggerCall], Awaitable[TriggerResult]]
#: Request lines and headers up to this size reach the app, so long URLs get a JSON 414.
MAX_LINE = 64 * 1024


class PortInUse(StartError):
    """The port to listen on is taken; the message says which and what to do."""


class BodyTooLarge(Exception):
    pass


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to pass `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def framework_errors(config: HostConfig) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if len(request.raw_path.encode()) > config.max_url_bytes:
            return json_error(414, f"The URL is longer than {config.max_url_bytes} bytes.")
        try:
            return await handler(request)
        except BodyTooLarge:
            response = json_error(413, f"The request body is larger than {config.max_request_bytes:,} bytes.")
            response.force_close()
            return response
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == "application/json":
                raise
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return json_error(exc.status, exc.reason, allow)
        except Exception:  # noqa: BLE001 - the server answers JSON, and logs what broke
            log.exception("Unhandled error serving %s %s", request.method, request.path)
            return json_error(500, "The server could not handle the request.")
    return middleware


class Triggers:
    """Matches requests to HTTP triggers, checks their keys and invokes them."""

    def __init__(self, functions: list[HttpFunction], config: HostConfig, keys: HostKeys,
                 invoke: Invoke, binding: Callable[[], str], enforce_keys: bool) -> None:
        self.routes: RouteTable[HttpFunction] = RouteTable(config.route_prefix)
        for function in functions:
            self.routes.add(function.route, function)
        self.config = config
        self.keys = keys
        self.invoke = invoke
        self.binding = binding
        self.enforce_keys = enforce_keys

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = safe_path(request.raw_path.split("?", 1)[0])
        matches = self.routes.match(path)
        if not matches:
            return json_error(404, f"No function is registered for {request.method} {path}.")
        allowed = [(f, values) for f, values in matches if not f.methods or request.method in f.methods]
        if not allowed:
            methods = sorted({m for f, _ in matches for m in f.methods})
            return json_error(405, f"{request.method} is not allowed here; use {', '.join(methods)}.",
                              {"Allow": ", ".join(methods)})
        function, values = allowed[0]
        presented = request.query.get("code") or request.headers.get("x-functions-key")
        if self.enforce_keys and not self.keys.allows(function.auth_level, presented):
            return json_error(401, f"Function '{function.name}' has auth level {function.auth_level}: send a "
                                   "function key as ?code= or in the x-functions-key header.")
        body = await read_body(request, self.config.max_request_bytes)
        data = HttpRequestData(method=request.method, url=str(request.url), headers=dict(request.headers),
                               params=dict(request.query), route_params=values, body=body)
        client = self.binding() if function.client_param else None
        result = await self.invoke(TriggerCall(function.name, data, client))
        if result.error is not None or result.response is None:
            log.error("%s", result.error)
            return json_error(500, f"Exception while executing function: Functions.{function.name}")
        response = result.response
        return web.Response(status=response.status, body=response.body, headers=response.headers)


def public_app(durable: DurableApi, triggers: Triggers, config: HostConfig) -> web.Application:
    app = web.Application(middlewares=[framework_errors(config)], client_max_size=config.max_request_bytes)
    durable.add_routes(app, WEBHOOK_PATH, keyed=True)
    app.router.add_route("*", "/{tail:.*}", triggers.handle)
    return app


def rpc_app(durable: DurableApi, config: HostConfig) -> web.Application:
    """Loopback only: the SDK's client calls land here without a key, as on the extension's
    local RPC endpoint; management links work here too, with the key."""
    app = web.Application(middlewares=[framework_errors(config)], client_max_size=config.max_request_bytes)
    durable.add_routes(app, RPC_PATH, keyed=False)
    durable.add_routes(app, WEBHOOK_PATH, keyed=True)
    return app


async def listen(app: web.Application, bind: str, port: int) -> tuple[web.AppRunner, str]:
    """Listen on bind:port (0 picks a free port); returns the runner and its origin."""
    runner = web.AppRunner(app, access_log=None, max_line_size=MAX_LINE, max_field_size=MAX_LINE)
    await runner.setup()
    try:
        await web.TCPSite(runner, bind, port).start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} on {bind} is already in use; stop whatever listens there "
                            "or pass --port with a free one") from None
        raise
    bound_port = runner.addresses[0][1]
    shown = "127.0.0.1" if bind in ("0.0.0.0", "localhost", "", "::") else bind
    return runner, f"http://{shown}:{bound_port}"
