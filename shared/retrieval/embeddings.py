"""Embeddings from the model provider's OpenAI-compatible `/embeddings` endpoint, over httpx.

The same provider settings as chat (MODEL_PROVIDER, MODEL_BASE_URL, MODEL_API_KEY): an
OpenAI-compatible server (`{base}/embeddings`), or Azure OpenAI / AI Foundry
(`{base}/openai/v1/embeddings`, or the deployment route with AZURE_OPENAI_API_VERSION),
keyless with a Microsoft Entra token when there is no key. The model is EMBEDDING_MODEL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import numpy as np
from pydantic import BaseModel, ValidationError

from shared.config import Settings
from shared.llm import AZURE_SCOPE, ModelError, ModelNotConfigured
from shared.models import TokenUsage
from shared.telemetry import spans

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

log = logging.getLogger(__name__)

BATCH_SIZE = 64
PARALLEL_REQUESTS = 4
ATTEMPTS = 5
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_INPUT_CHARS = 8000
CONNECT_TIMEOUT_SECONDS = 10.0


class EmbeddingError(ModelError):
    """The embeddings endpoint failed or answered something that is not embeddings."""


class _Item(BaseModel):
    index: int
    embedding: list[float]


class _Usage(BaseModel):
    prompt_tokens: int = 0


class _Response(BaseModel):
    data: list[_Item]
    model: str | None = None
    usage: _Usage | None = None


@dataclass(frozen=True)
class Embedded:
    """Unit vectors, one row per input, and what computing them cost."""

    vectors: np.ndarray
    usage: TokenUsage


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


class EmbeddingClient:
    """Embeds texts in batches, a few requests at a time, retrying throttling and 5xx."""

    def __init__(
        self,
        settings: Settings,
        *,
        credential: TokenCredential | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.model_configured:
            raise ModelNotConfigured("no model provider configured for embeddings: set MODEL_PROVIDER and MODEL_BASE_URL")
        self.settings = settings
        self.model = settings.embedding_model
        self._credential = credential
        self._token: Callable[[], str] | None = None
        self._transport = transport

    @property
    def url(self) -> str:
        s = self.settings
        base = (s.model_base_url or "").rstrip("/")
        if s.model_provider != "azure":
            return f"{base}/embeddings"
        base = base.removesuffix("/openai/v1").removesuffix("/openai")
        if s.azure_openai_api_version:
            return f"{base}/openai/deployments/{self.model}/embeddings?api-version={s.azure_openai_api_version}"
        return f"{base}/openai/v1/embeddings"

    async def _headers(self) -> dict[str, str]:
        s = self.settings
        if s.model_api_key:
            return {"api-key": s.model_api_key} if s.model_provider == "azure" else {"authorization": f"Bearer {s.model_api_key}"}
        if s.model_provider != "azure":
            return {}
        if self._token is None:
            from azure.identity import DefaultAzureCredential, get_bearer_token_provider

            self._token = get_bearer_token_provider(self._credential or DefaultAzureCredential(), AZURE_SCOPE)
        try:
            token = await asyncio.to_thread(self._token)
        except Exception as exc:
            raise ModelNotConfigured(f"no MODEL_API_KEY and no Azure credential for {AZURE_SCOPE}: {exc}") from exc
        return {"authorization": f"Bearer {token}"}

    async def embed(self, texts: list[str]) -> Embedded:
        """Unit-length embeddings of `texts`, in order."""
        if not texts:
            return Embedded(vectors=np.zeros((0, 0), dtype=np.float32), usage=TokenUsage())
        inputs = [t[:MAX_INPUT_CHARS] if t.strip() else "(empty)" for t in texts]
        batches = [inputs[i : i + BATCH_SIZE] for i in range(0, len(inputs), BATCH_SIZE)]
        gate = asyncio.Semaphore(PARALLEL_REQUESTS)
        timeout = httpx.Timeout(self.settings.model_timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS)
        async with httpx.AsyncClient(timeout=timeout, transport=self._transport) as http:

            async def one(batch: list[str]) -> tuple[list[list[float]], TokenUsage]:
                async with gate:
                    with spans.model_call(self.settings.model_provider, self.model, self.url, "embeddings") as call:
                        vectors, response_model, tokens = await self._request(http, batch)
                        # Priced like every other call: an embedding model by its input tokens.
                        usage = TokenUsage(model_calls=1, prompt_tokens=tokens).priced(self.settings.prices.get(self.model))
                        call.record(response_model, usage)
                    return vectors, usage

            results = await asyncio.gather(*(one(b) for b in batches))
        rows = [row for vectors, _ in results for row in vectors]
        dims = {len(r) for r in rows}
        if len(dims) != 1:
            raise EmbeddingError(f"{self.url} returned embeddings of different sizes {sorted(dims)}")
        usage = sum((used for _, used in results), TokenUsage())
        return Embedded(vectors=_unit_rows(np.asarray(rows, dtype=np.float32)), usage=usage)

    async def _request(self, http: httpx.AsyncClient, batch: list[str]) -> tuple[list[list[float]], str, int]:
        """One batch's embeddings in input order, the model that made them, and its input tokens."""
        where = f"embeddings model {self.model!r} at {self.url}"
        body = {"model": self.model, "input": batch, "encoding_format": "float"}
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await http.post(self.url, json=body, headers=await self._headers())
            except httpx.ConnectError as exc:  # nothing listens there: retrying will not help
                raise EmbeddingError(f"{where} is unreachable: {exc}") from exc
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS:
                    raise EmbeddingError(f"{where} did not answer: {exc!r}") from exc
                await asyncio.sleep(min(2**attempt, 20))
                continue
            if response.status_code in RETRY_STATUSES and attempt < ATTEMPTS:
                wait = _retry_after(response) or min(2**attempt, 20)
                log.warning("%s answered %d; retrying in %.0fs", where, response.status_code, wait)
                await asyncio.sleep(wait)
                continue
            if response.status_code != 200:
                raise EmbeddingError(
                    f"{where} failed: HTTP {response.status_code} {response.text[:300]}", status=response.status_code
                )
            try:
                parsed = _Response.model_validate_json(response.content)
            except ValidationError as exc:
                raise EmbeddingError(f"{where} answered something that is not embeddings: {exc.errors()[:1]}") from None
            if len(parsed.data) != len(batch):
                raise EmbeddingError(f"{where} returned {len(parsed.data)} embeddings for {len(batch)} inputs")
            ordered = sorted(parsed.data, key=lambda item: item.index)
            tokens = parsed.usage.prompt_tokens if parsed.usage else 0
            return [item.embedding for item in ordered], parsed.model or self.model, tokens
        raise AssertionError("unreachable")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers.get("retry-after", "")), 60.0)
    except ValueError:
        return None
