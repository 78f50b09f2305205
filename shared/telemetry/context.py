"""Where a query's spans go: one trace per root query, its id chosen when the query starts and
carried in every (sub-)query's task, so sub-orchestrations on other workers join the same trace.

Orchestrators are replayed, so they emit nothing; activities do. A (sub-)query's own span is
emitted once, when it finishes, under a span id every step of that instance can compute from the
trace id and the instance id alone: its steps name it as their parent while it is still running.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pydantic import BaseModel, Field

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
INVALID_TRACE_ID = "0" * 32
INVALID_SPAN_ID = "0" * 16


class TraceParent(BaseModel):
    """The trace a root query belongs to, and the span (an incoming request's) its query span is a
    child of; None when the query started the trace."""

    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    parent_span_id: str | None = Field(None, pattern=r"^[0-9a-f]{16}$")
    sampled: bool = True

    @classmethod
    def parse(cls, header: str | None) -> TraceParent | None:
        """A W3C `traceparent` header (version 00), or None when it is missing or malformed."""
        match = TRACEPARENT.match((header or "").strip().lower())
        if match is None or match.group(1) == INVALID_TRACE_ID or match.group(2) == INVALID_SPAN_ID:
            return None
        return cls(trace_id=match.group(1), parent_span_id=match.group(2), sampled=bool(int(match.group(3), 16) & 1))

    @classmethod
    def of_root(cls, root_id: str) -> TraceParent:
        """The trace of a query whose task carries none (started before tasks carried one)."""
        return cls(trace_id=hashlib.sha256(f"trace/{root_id}".encode()).hexdigest()[:32])

    @property
    def flags(self) -> TraceFlags:
        return TraceFlags(TraceFlags.SAMPLED if self.sampled else TraceFlags.DEFAULT)


def start_trace(headers: Mapping[str, str] | None = None) -> TraceParent:
    """The trace of a query starting now: the span this code runs in (the Functions host's
    request span in Azure), else the caller's `traceparent` header, else a new trace."""
    current = trace.get_current_span().get_span_context()
    if current.is_valid:
        return TraceParent(
            trace_id=f"{current.trace_id:032x}", parent_span_id=f"{current.span_id:016x}", sampled=current.trace_flags.sampled
        )
    given = TraceParent.parse((headers or {}).get("traceparent"))
    return given or TraceParent(trace_id=_random_trace_id())


def _random_trace_id() -> str:
    while (trace_id := secrets.token_hex(16)) == INVALID_TRACE_ID:
        pass
    return trace_id


def query_span_id(trace_id: str, instance_id: str) -> int:
    """The span id of a (sub-)query's span: the same in every process that asks."""
    digest = hashlib.sha256(f"{trace_id}/{instance_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def remote_parent(trace_parent: TraceParent, span_id: int) -> Context:
    """A context whose current span is `span_id` of this trace, emitted (or to be emitted) elsewhere."""
    span = SpanContext(int(trace_parent.trace_id, 16), span_id, is_remote=True, trace_flags=trace_parent.flags)
    return trace.set_span_in_context(NonRecordingSpan(span))
