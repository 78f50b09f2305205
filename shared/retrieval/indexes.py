"""A corpus's retrieval indexes: built once per corpus id, stored beside the corpus in
blob storage, reused by every later query.

    corpora/{corpus_id}.retrieval/passages-{chars}.sqlite          passages + FTS5 keyword index
    corpora/{corpus_id}.retrieval/vectors-{chars}-{model}.npy      passage embeddings
    corpora/{corpus_id}.retrieval/search-{index}-{chars}-{model}.json   uploaded to Azure AI Search

The keys carry what the content depends on (passage size, embedding model), so changing
a setting builds a new index instead of reading a stale one. Content is deterministic and
blob writes replace, so two workers racing to build the same index are harmless; within a
worker, a lock makes the second wait for the first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
import weakref
from functools import lru_cache
from pathlib import Path

import numpy as np

from shared.config import Settings
from shared.corpus import load_index
from shared.models import TokenUsage
from shared.retrieval.azure_search import AzureSearch
from shared.retrieval.embeddings import EmbeddingClient
from shared.retrieval.fusion import reciprocal_rank_fusion
from shared.retrieval.keyword import PassageIndex, build_passage_index
from shared.retrieval.models import NEEDS_VECTORS, IndexOutput, SearchMode, Strategy
from shared.retrieval.passages import split_passages
from shared.retrieval.vector import load_vectors, model_slug, nearest, save_vectors
from shared.storage.base import BlobStore

log = logging.getLogger(__name__)

# Each retriever's candidates before fusion: deep enough that a passage ranked well by one
# and poorly by the other still reaches the fused top k.
FUSION_POOL = 50


@lru_cache(maxsize=16)
def _vectors_at(path: str, _mtime_ns: int) -> np.ndarray:
    return load_vectors(Path(path))


class RetrievalIndexes:
    """Builds, finds and searches the indexes of stored corpora (one per worker process)."""

    def __init__(self, settings: Settings, store: BlobStore, *, embeddings: EmbeddingClient | None = None) -> None:
        self.settings = settings
        self.store = store
        self._embeddings = embeddings
        self._search: AzureSearch | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()

    # --- keys -------------------------------------------------------------------------

    def _prefix(self, corpus_id: str) -> str:
        return f"{corpus_id}.retrieval/"

    def passages_key(self, corpus_id: str) -> str:
        return f"{self._prefix(corpus_id)}passages-{self.settings.retrieval_passage_chars}.sqlite"

    def vectors_key(self, corpus_id: str) -> str:
        chars, model = self.settings.retrieval_passage_chars, model_slug(self.settings.embedding_model)
        return f"{self._prefix(corpus_id)}vectors-{chars}-{model}.npy"

    def search_marker_key(self, corpus_id: str) -> str:
        s = self.settings
        return f"{self._prefix(corpus_id)}search-{s.search_index_name}-{s.retrieval_passage_chars}-{model_slug(s.embedding_model)}.json"

    # --- parts ------------------------------------------------------------------------

    @property
    def embeddings(self) -> EmbeddingClient:
        if self._embeddings is None:
            self._embeddings = EmbeddingClient(self.settings)
        return self._embeddings

    @property
    def azure_search(self) -> AzureSearch | None:
        """The Azure AI Search service when AZURE_SEARCH_ENDPOINT is set, else None (local indexes)."""
        if self._search is None and self.settings.azure_search_endpoint:
            self._search = AzureSearch(self.settings.azure_search_endpoint, self.settings.search_index_name)
        return self._search

    def passage_index(self, corpus_id: str) -> PassageIndex:
        return PassageIndex(self.store.local_path(self.store.containers.corpora, self.passages_key(corpus_id)))

    def vectors(self, corpus_id: str) -> np.ndarray:
        path = self.store.local_path(self.store.containers.corpora, self.vectors_key(corpus_id))
        return _vectors_at(str(path), path.stat().st_mtime_ns)

    def _exists(self, key: str) -> bool:
        return self.store.exists(self.store.containers.corpora, key)

    def _lock(self, key: str) -> asyncio.Lock:
        """One lock per index and event loop (an asyncio lock belongs to one loop)."""
        return self._locks.setdefault(asyncio.get_running_loop(), {}).setdefault(key, asyncio.Lock())

    # --- building ---------------------------------------------------------------------

    async def ensure(self, corpus_id: str, strategies: list[Strategy] | set[Strategy]) -> IndexOutput:
        """Every index these strategies search, built if missing; says which were built."""
        built: list[str] = []
        reused: list[str] = []
        usage = TokenUsage()
        (built if await self._ensure_passages(corpus_id) else reused).append("keyword")
        # Azure AI Search holds passages with their vectors, whichever strategy asks first.
        if NEEDS_VECTORS & set(strategies) or self.azure_search is not None:
            new, spent = await self._ensure_vectors(corpus_id)
            (built if new else reused).append("vector")
            usage += spent
            if self.azure_search is not None:
                (built if await self._ensure_search(corpus_id) else reused).append("azure-search")
        index = await asyncio.to_thread(load_index, self.store, corpus_id)
        count = await asyncio.to_thread(self.passage_index(corpus_id).count)
        return IndexOutput(passages=count, context_chars=index.chars, built=built, reused=reused, usage=usage)

    async def _ensure_passages(self, corpus_id: str) -> bool:
        key = self.passages_key(corpus_id)
        async with self._lock(key):
            if await asyncio.to_thread(self._exists, key):
                return False
            await asyncio.to_thread(self._build_passages, corpus_id, key)
            return True

    def _build_passages(self, corpus_id: str, key: str) -> None:
        began = time.perf_counter()
        index = load_index(self.store, corpus_id)
        path = self.store.local_path(self.store.containers.corpora, corpus_id)
        context = path.read_text(encoding="utf-8")
        passages = split_passages(context, index.sections, self.settings.retrieval_passage_chars)
        with tempfile.TemporaryDirectory(prefix="rlm-index-") as tmp:
            target = Path(tmp) / "passages.sqlite"
            build_passage_index(passages, target)
            self.store.put_file(self.store.containers.corpora, key, target)
        log.info("built keyword index corpus=%s passages=%d seconds=%.2f", corpus_id, len(passages), time.perf_counter() - began)

    async def _ensure_vectors(self, corpus_id: str) -> tuple[bool, TokenUsage]:
        key = self.vectors_key(corpus_id)
        async with self._lock(key):
            if await asyncio.to_thread(self._exists, key):
                return False, TokenUsage()
            began = time.perf_counter()
            texts = await asyncio.to_thread(self.passage_index(corpus_id).all_texts)
            embedded = await self.embeddings.embed(texts)
            await asyncio.to_thread(self._store_vectors, key, embedded.vectors)
            log.info(
                "built vector index corpus=%s model=%s passages=%d seconds=%.2f",
                corpus_id, self.embeddings.model, len(texts), time.perf_counter() - began,
            )  # fmt: skip
            return True, embedded.usage

    def _store_vectors(self, key: str, vectors: np.ndarray) -> None:
        with tempfile.TemporaryDirectory(prefix="rlm-index-") as tmp:
            target = Path(tmp) / "vectors.npy"
            save_vectors(vectors, target)
            self.store.put_file(self.store.containers.corpora, key, target)

    async def _ensure_search(self, corpus_id: str) -> bool:
        key = self.search_marker_key(corpus_id)
        search = self.azure_search
        assert search is not None
        async with self._lock(key):
            if await asyncio.to_thread(self._exists, key):
                return False
            vectors = await asyncio.to_thread(self.vectors, corpus_id)
            passages = await asyncio.to_thread(self._all_passages, corpus_id)
            await asyncio.to_thread(search.ensure_index, int(vectors.shape[1]))
            count = await asyncio.to_thread(search.upload, corpus_id, passages, vectors)
            marker = {"index": search.index_name, "endpoint": search.endpoint, "passages": count}
            await asyncio.to_thread(self.store.put_text, self.store.containers.corpora, key, json.dumps(marker))
            return True

    def _all_passages(self, corpus_id: str):
        index = self.passage_index(corpus_id)
        return index.passages(list(range(index.count())))

    # --- searching --------------------------------------------------------------------

    async def search(self, corpus_id: str, mode: SearchMode, query: str, k: int) -> tuple[list[tuple[int, float]], TokenUsage]:
        """The best `k` passages for the query, and what embedding the query cost."""
        usage = TokenUsage()
        vector = None
        if mode != "keyword":
            embedded = await self.embeddings.embed([query])
            vector, usage = embedded.vectors[0], embedded.usage
        if self.azure_search is not None:
            hits = await asyncio.to_thread(self.azure_search.search, corpus_id, mode, query, vector, k)
            return hits, usage
        if mode == "keyword":
            return await asyncio.to_thread(self.passage_index(corpus_id).search, query, k), usage
        assert vector is not None
        vectors = await asyncio.to_thread(self.vectors, corpus_id)
        by_vector = nearest(vectors, vector, k if mode == "vector" else max(k, FUSION_POOL))
        if mode == "vector":
            return by_vector, usage
        by_keyword = await asyncio.to_thread(self.passage_index(corpus_id).search, query, max(k, FUSION_POOL))
        fused = reciprocal_rank_fusion([[i for i, _ in by_keyword], [i for i, _ in by_vector]], k)
        return fused, usage
