"""The Durable HTTP API: `{origin}/runtime/webhooks/durabletask/...` and the RPC endpoint.

The same handlers serve the public webhook path, which demands the system key (`code=`
or `x-functions-key`), and the loopback RPC path the SDK's client uses, which does not.
Routes, status codes and bodies follow the extension's HttpApiHandler.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from dateutil.parser import isoparse

from .config import HostConfig
from .control import InstanceControl, Outcome
from .engine import InstanceExists
from .entities import EntityScheduler
from .functions import UnknownFunction, unknown_function_message
from .history import fmt_time
from .keys import HostKeys
from .limits import PayloadTooLarge
from .links import management_urls
from .state import InstanceQuery
from .status import IN_PROGRESS, InstanceStatus, history_view, status_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATUSES = ("Running", "Pending", "Failed", "Canceled", "Terminated", "Completed", "ContinuedAsNew", "Suspended")
DEFAULT_PAGE = 100


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"Message": message, **extra}, status=status)


def input_text(raw: bytes) -> str | None:
    """A request body as orchestration input JSON text.

    The SDK posts the input already JSON-encoded, as a JSON string; a user posts a plain
    JSON body. Both end up as the same input text. Raises ValueError for non-JSON.
    """
    if not raw.strip():
        return None
    value = json.loads(raw)
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            return json.dumps(value)
    return json.dumps(value)


def _flag(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name, "").strip().lower()
    return default if value not in ("true", "false") else value == "true"


def _time(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return fmt_time(isoparse(raw))
    except (ValueError, OverflowError):
        return None


class DurableApi:
    def __init__(self, control: InstanceControl, config: HostConfig, keys: HostKeys) -> None:
        self.control = control
        self.entities: EntityScheduler = control.engine.entities
        self.config = config
        self.keys = keys

    def add_routes(self, app: web.Application, base: str, keyed: bool) -> None:
        def route(method: str, path: str, handler: Handler) -> None:
            app.router.add_route(method, base + path, self._guard(handler) if keyed else handler)

        route("POST", "orchestrators/{name}", self.start)
        route("POST", "orchestrators/{name}/{instance_id}", self.start)
        for path in ("instances", "instances/"):
            route("GET", path, self.list_instances)
            route("DELETE", path, self.purge_where)
        route("GET", "instances/{instance_id}", self.status)
        route("DELETE", "instances/{instance_id}", self.purge)
        route("POST", "instances/{instance_id}/raiseEvent/{event}", self.raise_event)
        route("POST", "instances/{instance_id}/{operation}", self.operate)
        route("GET", "entities/{name}/{key}", self.read_entity)
        route("POST", "entities/{name}/{key}", self.signal_entity)
        route("DELETE", "entities/{name}/{key}", self.signal_entity)

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            presented = request.query.get("code") or request.headers.get("x-functions-key")
            if not self.keys.allows("system", presented):
                return error(401, "The Durable Functions HTTP API needs the system key: add "
                                  "?code=<durabletask_extension key> (printed by `python -m devhost serve`).")
            return await handler(request)
        return guarded

    @staticmethod
    def _origin(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def _links(self, request: web.Request, instance_id: str) -> dict[str, str]:
        return management_urls(self._origin(request), instance_id, self.config.hub_name, self.keys.system_key)

    def _accepted(self, request: web.Request, instance_id: str) -> web.Response:
        links = self._links(request, instance_id)
        return web.json_response(links, status=202, headers={"Location": links["statusQueryGetUri"],
                                                             "Retry-After": "10"})

    async def start(self, request: web.Request) -> web.Response:
        try:
            body = input_text(await request.read())
        except ValueError:
            return error(400, "Invalid JSON content")
        instance_id = request.match_info.get("instance_id") or uuid.uuid4().hex
        if instance_id.startswith("@"):
            return error(400, "Orchestration instance ids must not start with @: that prefix names entities.")
        try:
            self.control.engine.start(request.match_info["name"], body, instance_id)
        except UnknownFunction as exc:
            message = str(exc.args[0])
            return error(400, "One or more of the arguments submitted is incorrect", ExceptionMessage=message)
        except PayloadTooLarge as exc:
            return error(413, str(exc), ExceptionMessage=str(exc))
        except InstanceExists as exc:
            return error(409, str(exc), ExceptionMessage=str(exc))
        return await self._maybe_wait(request, instance_id)

    async def _maybe_wait(self, request: web.Request, instance_id: str) -> web.Response:
        """`?timeout=&pollingInterval=`: answer with the output if it finishes in time."""
        try:
            timeout = float(request.query["timeout"])
            float(request.query["pollingInterval"])
        except (KeyError, ValueError):
            return self._accepted(request, instance_id)
        engine = self.control.engine
        deadline = asyncio.get_running_loop().time() + max(0.0, timeout)
        while (row := engine.store.get_instance(instance_id)) is not None and row.status in IN_PROGRESS:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return self._accepted(request, instance_id)
            await engine.wait_changed(instance_id, remaining)
        if row is not None and row.status == "Completed":
            return web.json_response(InstanceStatus.from_row(row).output)
        return await self.status(request, instance_id)

    async def status(self, request: web.Request, instance_id: str | None = None) -> web.Response:
        instance_id = instance_id or request.match_info["instance_id"]
        row = self.control.store.get_instance(instance_id)
        if row is None:
            return error(404, f"No instance with ID '{instance_id}' found.")
        status = InstanceStatus.from_row(row)
        show_input = _flag(request, "showInput", True)
        doc = status_json(status, show_input)
        if _flag(request, "showHistory", False):
            events = [e.event for e in self.control.store.history(instance_id)]
            doc["historyEvents"] = history_view(events, _flag(request, "showHistoryOutput", False), show_input)
        if status.runtime_status in IN_PROGRESS:
            return web.json_response(doc, status=202, headers={"Location": str(request.url), "Retry-After": "5"})
        failed = status.runtime_status == "Failed" and _flag(request, "returnInternalServerErrorOnFailure", False)
        return web.json_response(doc, status=500 if failed else 200)

    def _query(self, request: web.Request) -> InstanceQuery:
        statuses = [s for raw in request.query.getall("runtimeStatus", []) for s in raw.split(",")]
        top = request.query.get("top", "")
        return InstanceQuery(created_from=_time(request, "createdTimeFrom"), created_to=_time(request, "createdTimeTo"),
                             statuses=[s for s in STATUSES if s.lower() in {x.strip().lower() for x in statuses}],
                             prefix=request.query.get("instanceIdPrefix") or None,
                             top=int(top) if top.isdigit() and int(top) > 0 else DEFAULT_PAGE,
                             after=request.headers.get("x-ms-continuation-token") or None)

    async def list_instances(self, request: web.Request) -> web.Response:
        try:
            rows, token = self.control.store.query_instances(self._query(request))
        except ValueError as exc:
            return error(400, str(exc))
        show_input = _flag(request, "showInput", False)
        body = [status_json(InstanceStatus.from_row(r), show_input) for r in rows]
        return web.json_response(body, headers={"x-ms-continuation-token": token or "null"})

    async def purge_where(self, request: web.Request) -> web.Response:
        if _time(request, "createdTimeFrom") is None:
            return error(400, "Please provide value for 'createdTimeFrom' parameter.")
        deleted = self.control.purge_where(self._query(request))
        if not deleted:
            return web.json_response({"instancesDeleted": 0}, status=404)
        return web.json_response({"instancesDeleted": deleted})

    async def purge(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        outcome = self.control.purge(instance_id)
        if outcome is Outcome.MISSING:
            return web.json_response({"instancesDeleted": 0}, status=404)
        if outcome is Outcome.CONFLICT:
            return error(400, f"Instance '{instance_id}' has not finished; only a completed, failed or "
                              "terminated instance can be purged.")
        return web.json_response({"instancesDeleted": 1})

    async def raise_event(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        raw = await request.read()
        try:
            data = input_text(raw)
        except ValueError:
            return error(400, "Invalid JSON content")
        try:
            outcome = self.control.raise_event(instance_id, request.match_info["event"], data)
        except PayloadTooLarge as exc:
            return error(413, str(exc))
        return self._outcome(outcome, instance_id)

    def _outcome(self, outcome: Outcome, instance_id: str) -> web.Response:
        if outcome is Outcome.MISSING:
            return error(404, f"No instance with ID '{instance_id}' found.")
        if outcome is Outcome.GONE:
            return error(410, f"Instance with ID '{instance_id}' is gone: either completed or failed.")
        return web.json_response(None, status=202)

    async def operate(self, request: web.Request) -> web.Response:
        instance_id, operation = request.match_info["instance_id"], request.match_info["operation"].lower()
        reason = request.query.get("reason", "")
        if operation == "restart":
            new_id = _flag(request, "restartWithNewInstanceId", True)
            started = self.control.restart(instance_id, new_id)
            if started is None:
                return error(400, "InstanceId does not match a valid orchestration instance.")
            return await self._maybe_wait(request, started)
        actions = {"terminate": self.control.terminate, "suspend": self.control.suspend,
                   "resume": self.control.resume, "rewind": self.control.rewind}
        if operation not in actions:
            return error(404, f"There is no instance operation '{operation}'.")
        return self._outcome(actions[operation](instance_id, reason), instance_id)

    async def read_entity(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        entity = self.entities.read(request.match_info["name"], "" if key == "$" else key)
        if entity is None:
            return error(404, "No entity with that name and key has state.")
        return web.Response(text=entity.state or "null", content_type="application/json")

    async def signal_entity(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.control.engine.index.entity(name) is None:
            return error(400, "One or more of the arguments submitted is incorrect",
                         ExceptionMessage=unknown_function_message("entity", name, list(self.control.engine.index.entities)))
        operation = "delete" if request.method == "DELETE" else request.query.get("op", "")
        raw = await request.read()
        value: str | None = None
        if raw:
            if request.content_type == "application/json":
                try:
                    value = json.dumps(json.loads(raw))
                except ValueError as exc:
                    return error(400, f"Could not parse JSON content: {exc}")
            else:
                value = json.dumps(raw.decode("utf-8", errors="replace"))
        self.entities.signal(name, request.match_info["key"], operation, value)
        return web.json_response(None, status=202)
