"""The web UI: the single-page app built from ui/ (into ui/dist), served by the function app
itself under /api/ui/, so it needs nothing but the app (no CDN, no separate site).

The pages hold no secret and run before a user could give a key, so they are anonymous;
the API routes they call keep their function-level auth and the app sends the key.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlencode

import azure.functions as func

UI_ROOT = "/api/ui/"
DIST = Path(__file__).resolve().parent.parent / "ui" / "dist"
INDEX = "index.html"
# Vite names everything under assets/ by a hash of its content: it never changes.
IMMUTABLE_DIR = "assets"
TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
}
# The app loads only its own files: a stray external URL (a CDN, a web font) is blocked.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    # The function key may ride in the address (?code=): never send it to another site.
    "Referrer-Policy": "no-referrer",
}

bp = func.Blueprint()


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str
    cache_control: str


class StaticSite:
    """Files of a built single-page app. A path that names no file and has no extension is a
    client-side route and gets index.html; a missing file is a 404, never index.html."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def response(self, path: str, headers: dict[str, str]) -> func.HttpResponse:
        if not (self.root / INDEX).is_file():
            return _error(503, "the web UI is not built: run `make setup` (or `npm --prefix ui ci && npm --prefix ui run build`)")
        relative = self._relative(path)
        if relative is None:
            return _error(404, f"no such file in the web UI: {path}")
        target = self.root / relative
        if not target.is_file():
            if PurePosixPath(relative).suffix:
                return _error(404, f"no such file in the web UI: {path}")
            target = self.root / INDEX
        immutable = target.parent == self.root / IMMUTABLE_DIR
        asset = _load(target, target.stat().st_mtime_ns, immutable)
        out = {"Content-Type": asset.content_type, "Cache-Control": asset.cache_control, "ETag": asset.etag, **SECURITY_HEADERS}
        if asset.gzipped is not None:
            out["Vary"] = "Accept-Encoding"
        if asset.etag in _etags(headers.get("if-none-match", "")):
            return func.HttpResponse(status_code=304, headers=out)
        if asset.gzipped is not None and "gzip" in headers.get("accept-encoding", ""):
            return func.HttpResponse(asset.gzipped, headers=out | {"Content-Encoding": "gzip"})
        return func.HttpResponse(asset.body, headers=out)

    def _relative(self, path: str) -> str | None:
        """The file path under the root, or None for anything that would leave it."""
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if any(p == ".." or p.startswith(".") for p in parts):
            return None
        relative = "/".join(parts) or INDEX
        if not (self.root / relative).resolve().is_relative_to(self.root):
            return None
        return relative


@lru_cache(maxsize=256)
def _load(path: Path, mtime_ns: int, immutable: bool) -> Asset:
    """Read (and compress) a file once per version of it; `mtime_ns` is the version."""
    body = path.read_bytes()
    kind = TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    textual = kind.startswith("text/") or kind in ("application/json", "application/manifest+json", "image/svg+xml")
    return Asset(
        body=body,
        # Images and fonts are compressed already; a small file is not worth a gzip header.
        gzipped=gzip.compress(body, compresslevel=6, mtime=0) if textual and len(body) > 1024 else None,
        content_type=f"{kind}; charset=utf-8" if textual else kind,
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        cache_control="public, max-age=31536000, immutable" if immutable else "no-cache",
    )


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _error(status: int, message: str) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"error": message}), status_code=status, mimetype="application/json")


site = StaticSite(DIST)


@bp.route(route="ui/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def web_ui(req: func.HttpRequest) -> func.HttpResponse:
    """The app's files, and index.html for its client-side routes (/api/ui/trace/{id}, ...).
    The catch-all also takes /api/ui itself (routing ignores a trailing slash); the app's
    links are absolute, so the page works at either address."""
    return site.response(req.route_params.get("path") or "", {k.lower(): v for k, v in req.headers.items()})


def trace_page(instance_id: str, key: str | None = None) -> str:
    """The UI's view of one query's trace; a function key given as `?code=` goes along, and
    the UI keeps it for the tab and takes it out of the address."""
    page = f"{UI_ROOT}trace/{quote(instance_id, safe='')}"
    return f"{page}?{urlencode({'code': key})}" if key else page
