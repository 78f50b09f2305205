"""Azure AI Search as the retrieval service (AZURE_SEARCH_ENDPOINT), through
`azure-search-documents`, keyless with DefaultAzureCredential.

One index (SEARCH_INDEX_NAME) holds the passages of every corpus, each tagged with its
corpus id, so a corpus is uploaded once and every search filters on it. Keyword search is
the service's BM25, vector search its HNSW index over our embeddings, hybrid its own
reciprocal rank fusion of the two. Needs the Search Index Data Contributor role (and
Search Service Contributor to create the index).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from shared.retrieval.models import SearchMode
from shared.retrieval.passages import Passage

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.search.documents import SearchClient
    from azure.search.documents.indexes import SearchIndexClient

log = logging.getLogger(__name__)

UPLOAD_BATCH = 500
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
VECTOR_PROFILE = "passages-hnsw"


class SearchServiceError(RuntimeError):
    """Azure AI Search refused a request; the message says which and why."""


def document_key(corpus_id: str, passage: int) -> str:
    return f"{corpus_id}-{passage}"


class AzureSearch:
    """The passages index of one search service."""

    def __init__(self, endpoint: str, index_name: str, *, credential: TokenCredential | None = None) -> None:
        url = urlsplit(endpoint)
        if url.scheme != "https" and url.hostname not in LOOPBACK_HOSTS:
            raise ValueError(f"AZURE_SEARCH_ENDPOINT must be https (got {endpoint}): it is sent a bearer token")
        self.endpoint = endpoint.rstrip("/")
        self.index_name = index_name
        # A plain-http endpoint is only ever a local emulator on loopback (checked above).
        self._call: dict[str, Any] = {} if url.scheme == "https" else {"enforce_https": False}
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self._credential = credential
        self._search: SearchClient | None = None

    def _index_client(self) -> SearchIndexClient:
        from azure.search.documents.indexes import SearchIndexClient

        return SearchIndexClient(self.endpoint, self._credential)

    def _client(self) -> SearchClient:
        if self._search is None:
            from azure.search.documents import SearchClient

            self._search = SearchClient(self.endpoint, self.index_name, self._credential)
        return self._search

    def ensure_index(self, dimensions: int) -> None:
        """Create the index, or update it to this schema (adding fields is allowed in place)."""
        from azure.search.documents.indexes.models import (
            HnswAlgorithmConfiguration,
            SearchField,
            SearchFieldDataType,
            SearchIndex,
            VectorSearch,
            VectorSearchProfile,
        )

        text = SearchFieldDataType.STRING
        fields = [
            SearchField(name="id", type=text, key=True, filterable=True),
            SearchField(name="corpus_id", type=text, filterable=True),
            SearchField(name="passage", type=SearchFieldDataType.INT32, filterable=True),
            SearchField(name="title", type=text, searchable=True),
            SearchField(name="document_id", type=text),
            SearchField(name="text", type=text, searchable=True),
            SearchField(
                name="vector",
                type="Collection(Edm.Single)",
                searchable=True,
                vector_search_dimensions=dimensions,
                vector_search_profile_name=VECTOR_PROFILE,
            ),
        ]
        vector_search = VectorSearch(
            algorithms=[HnswAlgorithmConfiguration(name="hnsw")],
            profiles=[VectorSearchProfile(name=VECTOR_PROFILE, algorithm_configuration_name="hnsw")],
        )
        index = SearchIndex(name=self.index_name, fields=fields, vector_search=vector_search)
        with self._index_client() as client:
            client.create_or_update_index(index, **self._call)

    def upload(self, corpus_id: str, passages: list[Passage], vectors: np.ndarray) -> int:
        """Upload (or overwrite) a corpus's passages with their vectors; returns the count."""
        client = self._client()
        for start in range(0, len(passages), UPLOAD_BATCH):
            batch = passages[start : start + UPLOAD_BATCH]
            documents = [
                {
                    "id": document_key(corpus_id, p.id),
                    "corpus_id": corpus_id,
                    "passage": p.id,
                    "title": p.title,
                    "document_id": p.document_id,
                    "text": p.text,
                    "vector": vectors[p.id].tolist(),
                }
                for p in batch
            ]
            results = client.merge_or_upload_documents(documents, **self._call)
            failed = [r for r in results if not r.succeeded]
            if failed:
                first = failed[0]
                raise SearchServiceError(
                    f"Azure AI Search index {self.index_name} refused {len(failed)} passages, e.g. {first.key}: {first.error_message}"
                )
        return len(passages)

    def search(self, corpus_id: str, mode: SearchMode, text: str, vector: np.ndarray | None, k: int) -> list[tuple[int, float]]:
        """The best `k` passages of the corpus: (passage id, service score), best first."""
        from azure.search.documents.models import VectorizedQuery

        vector_queries = None
        if mode != "keyword":
            assert vector is not None, "vector and hybrid search need the query's embedding"
            vector_queries = [VectorizedQuery(vector=vector.tolist(), k_nearest_neighbors=k, fields="vector")]
        results = self._client().search(
            search_text=text if mode != "vector" else None,
            vector_queries=vector_queries,
            filter=f"corpus_id eq '{corpus_id}'",
            select=["passage"],
            top=k,
            **self._call,
        )
        return [(int(r["passage"]), float(r["@search.score"])) for r in results]

    def close(self) -> None:
        if self._search is not None:
            self._search.close()
            self._search = None
