"""Reading what callers send, HTTP bodies and queue messages alike: bounded JSON, strict types.

Strict means JSON types are taken as they are: `true` or `"5"` is not an integer, `2.0`
is not a count. Size and nesting are bounded before any model sees the data, so a
pathological body is a clear 4xx, never a stack overflow.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

MiB = 1024 * 1024
MAX_JSON_BYTES = 64 * MiB
# The deepest valid body nests three levels (a batch's questions); this leaves room to spare.
MAX_JSON_DEPTH = 32


class InvalidInput(ValueError):
    """Input the caller must fix, with what is wrong (a list of {field, problem} or a text)."""

    status = 400

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class InputTooLarge(InvalidInput):
    status = 413


class NotJson(InvalidInput):
    """Bytes that do not parse as JSON at all."""


def load_json(raw: bytes) -> Any:
    if len(raw) > MAX_JSON_BYTES:
        raise InputTooLarge(f"the body is larger than {MAX_JSON_BYTES // MiB} MiB of JSON")
    try:
        data = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise too_deep() from None
        raise NotJson("the body is not valid JSON", str(exc)) from None
    if depth(data) > MAX_JSON_DEPTH:
        raise too_deep()
    return data


def too_deep() -> InvalidInput:
    return InvalidInput(f"the body is nested more than {MAX_JSON_DEPTH} levels deep")


def depth(value: Any) -> int:
    """How deeply arrays and objects nest (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH:
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json_as(raw: bytes, model: type[Model], what: str) -> Model:
    """`raw` as JSON validated strictly as `model`; InvalidInput names each field that is wrong."""
    return validate_as(load_json(raw), model, what)


def validate_as(data: Any, model: type[Model], what: str) -> Model:
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise InvalidInput(f"invalid {what}", validation_details(exc)) from None


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(map(str, e["loc"])) or "(body)", "problem": e["msg"]} for e in exc.errors()]
