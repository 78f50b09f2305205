"""Durable HTTP (`context.call_http`): the extension's built-in HTTP activity.

The request goes out with httpx; a token source adds a bearer token from
azure-identity. A 202 with a Location header is polled with GET until it answers
something else, waiting Retry-After seconds (or host.json's
defaultAsyncRequestSleepTimeMilliseconds) between polls, as the extension does; the
orchestration sees only the final response, as {"statusCode", "headers", "content"}.
"""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx

from .invocation import ActivityOutcome

ACCEPTED = 202


class DurableHttp:
    def __init__(self, poll_interval: timedelta, slots: asyncio.Semaphore) -> None:
        self.poll_interval = poll_interval
        self.slots = slots
        self._client: httpx.AsyncClient | None = None
        self._credential: Any = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._credential is not None:
            await self._credential.close()

    async def run(self, input_text: str) -> ActivityOutcome:
        try:
            request = (json.loads(input_text) or [{}])[0]
            response = await self._send(request)
        except Exception as exc:  # noqa: BLE001 - a refused connection, a bad request, no credential...
            return ActivityOutcome(reason=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
        return ActivityOutcome(result=json.dumps(response))

    async def _send(self, request: dict[str, Any]) -> dict[str, Any]:
        headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
        content = request.get("content")
        if content is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "text/plain"
        if request.get("tokenSource"):
            headers["Authorization"] = f"Bearer {await self._token(request['tokenSource'])}"
        method, uri = str(request.get("method") or "GET").upper(), str(request["uri"])
        while True:
            async with self.slots:
                response = await self._http().request(method, uri, headers=headers, content=content)
            location = response.headers.get("Location")
            if response.status_code != ACCEPTED or not location or request.get("asynchronousPatternEnabled") is False:
                return {"statusCode": response.status_code, "headers": dict(response.headers), "content": response.text}
            retry_after = response.headers.get("Retry-After", "")
            wait = int(retry_after) if retry_after.isdigit() else self.poll_interval.total_seconds()
            await asyncio.sleep(wait)
            method, uri, content = "GET", str(response.url.join(location)), None
            headers = {k: v for k, v in headers.items() if k.lower() not in ("x-functions-key", "content-type")}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(90.0), follow_redirects=False)
        return self._client

    async def _token(self, source: dict[str, Any]) -> str:
        """A token for the source's resource from the default Azure credential chain
        (managed identity in Azure, az login or environment locally)."""
        from azure.identity.aio import DefaultAzureCredential

        if self._credential is None:
            self._credential = DefaultAzureCredential()
        resource = str(source.get("resource") or "").rstrip("/")
        token = await self._credential.get_token(f"{resource}/.default")
        return token.token
