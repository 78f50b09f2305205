"""HTTP trigger routes: Functions route templates matched the way ASP.NET Core matches them.

Templates are `items/{id}`, `items/{id:int}`, `files/{*rest}`, `ping/{who?}`. Matching
runs on the request path with every escape decoded except `%2F`, after removing `.` and
`..` segments, so a route value never holds a slash it was not meant to and never walks
up a directory. Literal segments match without case; more specific templates win.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

Target = TypeVar("Target")

_PARAM = re.compile(r"\{(\*)?(\w+)(?::([^}?=]+))?(\?)?(?:=[^}]*)?\}")
_CONSTRAINTS = {
    "int": r"-?\d+", "long": r"-?\d+", "alpha": r"[A-Za-z]+", "bool": r"(?i:true|false)",
    "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}", "double": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?", "float": r"-?\d+(?:\.\d+)?",
}
_ENCODED_SLASH = re.compile(r"%2[fF]")


def safe_path(raw_path: str) -> str:
    """The request path decoded except for `%2F`, with dot segments resolved."""
    decoded = "%2F".join(unquote(part) for part in _ENCODED_SLASH.split(raw_path))
    normal = posixpath.normpath("/" + decoded.lstrip("/")) if decoded.strip("/") else "/"
    if decoded.endswith("/") and normal != "/":
        normal += "/"
    return "/" + normal.lstrip("/")


@dataclass(frozen=True)
class Route(Generic[Target]):
    template: str
    pattern: re.Pattern[str]
    rank: tuple[int, ...]
    target: Target


def _segment(segment: str) -> tuple[str, int]:
    """One template segment as a regex, and its precedence rank (lower wins)."""
    parts: list[str] = []
    position = 0
    params = list(_PARAM.finditer(segment))
    for match in params:
        parts.append(re.escape(segment[position:match.start()]))
        catch_all, name, constraint, optional = match.groups()
        if catch_all:
            parts.append(f"(?P<{name}>.*)")
        else:
            kind = (constraint or "").split("(")[0].strip().lower()
            body = _CONSTRAINTS.get(kind, r"[^/]+")
            parts.append(f"(?P<{name}>{body})" + ("?" if optional else ""))
        position = match.end()
    parts.append(re.escape(segment[position:]))
    if not params:
        return "".join(parts), 1
    if len(params) > 1 or params[0].start() > 0 or params[0].end() < len(segment):
        return "".join(parts), 2
    catch_all, _, constraint, optional = params[0].groups()
    return "".join(parts), 5 if catch_all or optional else 3 if constraint else 4


def compile_route(prefix: str, template: str, target: Target) -> Route[Target]:
    segments = [s for s in "/".join(p for p in (prefix.strip("/"), template.strip("/")) if p).split("/") if s]
    regex = ""
    ranks: list[int] = []
    for segment in segments:
        piece, rank = _segment(segment)
        ranks.append(rank)
        optional_tail = rank == 5
        regex += f"(?:/{piece})?" if optional_tail else f"/{piece}"
    return Route(template, re.compile(f"(?i:{regex or '/'})/?"), tuple(ranks), target)


class RouteTable(Generic[Target]):
    """Every trigger route, tried most specific first."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._routes: list[Route[Target]] = []

    def add(self, template: str, target: Target) -> None:
        self._routes.append(compile_route(self.prefix, template, target))
        self._routes.sort(key=lambda r: (r.rank, -len(r.rank)))

    def match(self, path: str) -> list[tuple[Target, dict[str, str]]]:
        """All routes whose template matches, best first, each with its route values."""
        found = []
        for route in self._routes:
            hit = route.pattern.fullmatch(path)
            if hit is not None:
                values = {k: v for k, v in hit.groupdict().items() if v is not None}
                found.append((route.target, values))
        return found
