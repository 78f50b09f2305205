"""Reading request bodies and writing JSON responses, the same way on every route:
bad input is a 4xx whose JSON body says what is wrong, never a 500."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class BadRequest(Exception):
    """Input the caller must fix; becomes a 400 with the details."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details

    def response(self) -> func.HttpResponse:
        return error_response(400, str(self), self.details)


def error_response(status: int, message: str, details: Any = None) -> func.HttpResponse:
    body = {"error": message} | ({"details": details} if details is not None else {})
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


def json_body(req: func.HttpRequest) -> Any:
    try:
        return json.loads(req.get_body() or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("the body is not valid JSON", str(exc)) from None


def parse_body(req: func.HttpRequest, model: type[Model], what: str) -> Model:
    """The body validated as `model`; BadRequest names each field that is wrong."""
    try:
        return model.model_validate(json_body(req))
    except ValidationError as exc:
        raise BadRequest(f"invalid {what}", validation_details(exc)) from None


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(map(str, e["loc"])) or "(body)", "problem": e["msg"]} for e in exc.errors()]


async def instance_summary(client: df.DurableOrchestrationClient, instance_id: str, output_key: str) -> dict[str, Any] | None:
    """Status and progress of an instance, with its output under `output_key` once it
    completed (or its error once it failed); None when there is no such instance."""
    status = await client.get_status(instance_id)
    if status is None or status.runtime_status is None:
        return None
    state = status.runtime_status.value
    summary: dict[str, Any] = {"status": state, "progress": status.custom_status}
    if state == "Completed":
        summary[output_key] = status.output
    elif state in ("Failed", "Terminated"):
        summary["error"] = status.output
    return summary
