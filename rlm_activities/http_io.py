"""Reading requests and writing JSON responses, the same way on every route: bad input is
a 4xx whose JSON body says what is wrong, never a 500."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, TypeVar

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel

from rlm_activities import services
from rlm_activities.api_models import ErrorBody
from rlm_activities.inputs import InvalidInput, parse_json_as
from shared.catalog import Catalog, Entry, Kind
from shared.starting import UnpricedModels

Model = TypeVar("Model", bound=BaseModel)
# What Idempotency-Key may hold: visible ASCII, as an HTTP header value can carry it.
IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,200}$"
LIST_DEFAULT, LIST_MAX = 20, 100
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """A request the caller must change; becomes a JSON error response with this status."""

    status = 400

    def __init__(self, message: str, details: Any = None, *, status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.details = details
        self.headers = headers or {}
        if status is not None:
            self.status = status

    def response(self) -> func.HttpResponse:
        return error_response(self.status, str(self), self.details, self.headers)


class BadRequest(ApiError):
    """Input the caller must fix: 400, or 413 for a body too large to read."""

    status = 400


class NotFound(ApiError):
    status = 404


def busy_error(limit: int) -> ApiError:
    """Every running-query slot is held: 429, retry in a few seconds."""
    return ApiError(
        f"{limit} queries are running, as many as this service runs at once; retry in a few seconds",
        {"limit": limit, "retry_after_seconds": RETRY_AFTER_SECONDS},
        status=429,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def error_response(status: int, message: str, details: Any = None, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return json_response(ErrorBody(error=message, details=details), status, headers)


def json_response(body: BaseModel | Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    text = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body, default=str)
    return func.HttpResponse(text, status_code=status, mimetype="application/json", headers=headers)


def parse_body(req: func.HttpRequest, model: type[Model], what: str) -> Model:
    """The body as strict JSON validated as `model`; BadRequest says what is wrong."""
    try:
        return parse_json_as(req.get_body() or b"", model, what)
    except InvalidInput as exc:
        raise BadRequest(str(exc), exc.details, status=exc.status) from None


def unpriced_error(exc: UnpricedModels) -> BadRequest:
    """A cost budget that cannot be counted: 400, naming each model without a price."""
    details = [{"field": "options.max_cost", "problem": f"RLM_PRICES has no price for {model}"} for model in exc.models]
    return BadRequest(str(exc), details)


def path_id(req: func.HttpRequest, name: str, pattern: str, what: str) -> str:
    """A route parameter checked against the pattern ids of its kind follow.

    Route values arrive decoded, so `%2F` or `..` show up here and are refused before
    they can reach a storage key or a Durable call.
    """
    value = req.route_params.get(name, "")
    if not re.fullmatch(pattern, value):
        raise BadRequest(f"{value!r} is not a valid {what}", [{"field": name, "problem": f"must match {pattern}"}])
    return value


def query_int(req: func.HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = req.params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw) or not low <= int(raw) <= high:
        raise BadRequest(f"invalid {name}", [{"field": name, "problem": f"must be an integer from {low} to {high}"}])
    return int(raw)


async def listed(req: func.HttpRequest, kind: Kind) -> list[Entry]:
    """The newest catalog records a listing route shows: `?limit=` of them, newest first."""
    limit = query_int(req, "limit", LIST_DEFAULT, 1, LIST_MAX)
    return await asyncio.to_thread(Catalog(services.store()).recent, kind, limit)


def listed_state(status: df.DurableOrchestrationStatus | None) -> str:
    """A listed instance's runtime status; one not created yet is still being started."""
    return status.runtime_status.value if status is not None and status.runtime_status is not None else "Pending"


def idempotency_key(req: func.HttpRequest) -> str | None:
    key = req.headers.get("idempotency-key")
    if key is not None and not re.fullmatch(IDEMPOTENCY_KEY, key):
        raise BadRequest(
            "invalid Idempotency-Key", [{"field": "Idempotency-Key", "problem": "1 to 200 visible ASCII characters"}]
        )
    return key


async def instance_summary(
    client: df.DurableOrchestrationClient, instance_id: str, output_key: str, orchestrator: str | None = None
) -> dict[str, Any] | None:
    """Status and progress of an instance (of `orchestrator`, when given), with its output
    under `output_key` once it completed (or its error once it failed); None when there is
    no such instance."""
    status = await client.get_status(instance_id)
    if status is None or status.runtime_status is None or orchestrator not in (None, status.name):
        return None
    state = status.runtime_status.value
    summary: dict[str, Any] = {"status": state, "progress": status.custom_status}
    if state == "Completed":
        summary[output_key] = status.output
    elif state in ("Failed", "Terminated"):
        summary["error"] = status.output
    return summary
