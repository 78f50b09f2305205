"""The long-lived parts functions use, built once per worker process from its settings."""

from __future__ import annotations

from functools import lru_cache

from shared.config import Settings, get_settings
from shared.retrieval.steps import RetrievalParts
from shared.steps import Parts
from shared.storage import BlobStore
from shared.trace import TraceStore


@lru_cache(maxsize=1)
def parts() -> Parts:
    return Parts.from_settings(get_settings())


@lru_cache(maxsize=1)
def retrieval() -> RetrievalParts:
    return RetrievalParts.from_parts(parts())


def settings() -> Settings:
    return parts().settings


def store() -> BlobStore:
    return parts().store


def traces() -> TraceStore:
    return parts().traces


def reset() -> None:
    """Forget the parts built from settings, for a host that changes its settings."""
    get_settings.cache_clear()
    parts.cache_clear()
    retrieval.cache_clear()
