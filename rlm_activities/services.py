"""The long-lived parts an activity uses, one of each per worker process."""

from __future__ import annotations

from functools import lru_cache

from shared.config import Settings, get_settings
from shared.llm import CopilotModel, get_model
from shared.sandbox import SandboxExecutor, make_executor
from shared.storage import BlobStore, make_store
from shared.trace import TraceStore


def settings() -> Settings:
    return get_settings()


@lru_cache(maxsize=1)
def store() -> BlobStore:
    return make_store(get_settings())


@lru_cache(maxsize=1)
def traces() -> TraceStore:
    return TraceStore(store())


@lru_cache(maxsize=1)
def executor() -> SandboxExecutor:
    return make_executor(get_settings(), store())


async def model() -> CopilotModel:
    return await get_model(get_settings())


def reset() -> None:
    """Forget the parts built from settings, for a host that changes its settings."""
    for cached in (get_settings, store, traces, executor):
        cached.cache_clear()
