"""The trigger that serves the web UI: files with their types and caching, index.html for
client-side routes, nothing outside the build; and the real build through a live host."""

from __future__ import annotations

import asyncio
import gzip
import re
from pathlib import Path

import httpx
import pytest

from rlm_activities.web_ui import DIST, StaticSite


@pytest.fixture
def site(tmp_path: Path) -> StaticSite:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><div id=app></div>" + " " * 2000)
    (root / "assets" / "index-1a2b.js").write_text("console.log('hi');" * 100)
    (root / "assets" / "index-1a2b.css").write_text("body{}")
    (root / "assets" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "outside.txt").write_text("not part of the site")
    return StaticSite(root)


def get(site: StaticSite, path: str, **headers: str):
    return site.response(path, {k.replace("_", "-"): v for k, v in headers.items()})


def test_files_have_their_content_types_and_hashed_assets_are_cached_for_good(site: StaticSite) -> None:
    js, css, png, index = (get(site, p) for p in ("assets/index-1a2b.js", "assets/index-1a2b.css", "assets/logo.png", ""))
    assert js.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert png.headers["Content-Type"] == "image/png"
    assert index.headers["Content-Type"] == "text/html; charset=utf-8"
    assert js.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert index.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in index.headers["Content-Security-Policy"]
    assert index.headers["X-Content-Type-Options"] == "nosniff"


def test_client_side_routes_get_index_html_but_missing_files_get_404(site: StaticSite) -> None:
    for route in ("trace/query-1234", "benchmarks", "assets/no-extension"):
        response = get(site, route)
        assert response.status_code == 200 and b"<div id=app>" in response.get_body()
        assert response.headers["Cache-Control"] == "no-cache"
    for missing in ("assets/gone-9z.js", "favicon.ico"):
        response = get(site, missing)
        assert response.status_code == 404 and "error" in response.get_body().decode()


@pytest.mark.parametrize("path", ["../outside.txt", "assets/../../outside.txt", "..\\outside.txt", ".env", "assets/.hidden.js"])
def test_nothing_outside_the_build_or_hidden_is_served(site: StaticSite, path: str) -> None:
    response = get(site, path)
    assert response.status_code == 404
    assert b"not part of the site" not in response.get_body() and b"SECRET" not in response.get_body()


def test_text_is_gzipped_when_accepted_and_revalidated_by_etag(site: StaticSite) -> None:
    plain = get(site, "assets/index-1a2b.js")
    zipped = get(site, "assets/index-1a2b.js", accept_encoding="gzip, deflate, br")
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(zipped.get_body()) == plain.get_body()
    assert len(zipped.get_body()) < len(plain.get_body())
    again = get(site, "assets/index-1a2b.js", if_none_match=plain.headers["ETag"])
    assert again.status_code == 304 and again.get_body() == b""
    assert get(site, "assets/logo.png", accept_encoding="gzip").headers.get("Content-Encoding") is None


def test_an_edited_file_is_served_fresh(site: StaticSite) -> None:
    before = get(site, "").headers["ETag"]
    (site.root / "index.html").write_text("<!doctype html><p>new build</p>")
    after = get(site, "")
    assert after.headers["ETag"] != before and b"new build" in after.get_body()


def test_an_unbuilt_ui_says_how_to_build_it(tmp_path: Path) -> None:
    response = StaticSite(tmp_path / "nothing").response("", {})
    assert response.status_code == 503
    assert "make setup" in response.get_body().decode()


def test_the_built_ui_is_served_by_the_function_app(rlm_env: Path) -> None:
    """ui/dist as `make setup` builds it, through the devhost's HTTP server and the real app."""
    assert (DIST / "index.html").is_file(), "the web UI is not built: run `make setup`"
    from devhost import EmbeddedHost
    from function_app import app

    async def main() -> tuple[httpx.Response, httpx.Response, list[httpx.Response]]:
        async with EmbeddedHost(app, state_dir=rlm_env) as host:
            ready = asyncio.Event()
            server = asyncio.create_task(host.serve(port=0, ready=ready))
            await asyncio.wait_for(ready.wait(), 30)
            try:
                async with httpx.AsyncClient(base_url=host.public_url, timeout=30) as client:
                    bare = await client.get("/api/ui")
                    page = await client.get("/api/ui/benchmarks/some-batch")
                    assets = [await client.get(src) for src in re.findall(r'(?:src|href)="(/api/ui/assets/[^"]+)"', page.text)]
                    return bare, page, assets
            finally:
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)

    bare, page, assets = asyncio.run(main())
    assert bare.status_code == 200 and '<div id="app">' in bare.text
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<div id="app">' in page.text
    types = sorted(r.headers["content-type"].split(";")[0] for r in assets)
    assert types == ["text/css", "text/javascript"]
    assert all(r.status_code == 200 and r.headers["cache-control"].endswith("immutable") for r in assets)
    assert all(r.headers["content-encoding"] == "gzip" for r in assets)  # httpx asks for gzip and decodes it
