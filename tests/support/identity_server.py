"""A managed-identity token endpoint on loopback, speaking the App Service / Functions
protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER), so `DefaultAzureCredential` takes the
same path it takes in Azure Functions and hands out a token the loopback services accept."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class IdentityServer:
    """`with IdentityServer() as identity:` then set `identity.environment` in the environment."""

    def __init__(self, token: str = "loopback-token", secret: str = "loopback-identity-header") -> None:
        self.token = token
        self.secret = secret
        self.resources: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/msi/token"

    @property
    def environment(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.secret}

    def __enter__(self) -> IdentityServer:
        threading.Thread(target=self.httpd.serve_forever, name="identity-loopback", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: IdentityServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the resources asked for are recorded instead."""

        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            if self.headers.get("X-IDENTITY-HEADER") != server.secret or "resource" not in query:
                self._reply(400, {"error": "invalid_request"})
                return
            server.resources.append(query["resource"])
            self._reply(200, {
                "access_token": server.token,
                "expires_on": str(int(time.time()) + 3600),
                "resource": query["resource"],
                "token_type": "Bearer",
            })  # fmt: skip

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
