"""Blob-shaped storage: one interface, a filesystem backend and an Azure Blob backend."""

from __future__ import annotations

from shared.config import Settings
from shared.storage.base import BlobNotFound, BlobStore, Containers, corpus_key
from shared.storage.filesystem import FileStore

__all__ = ["BlobNotFound", "BlobStore", "Containers", "FileStore", "containers_of", "corpus_key", "make_store"]


def containers_of(settings: Settings) -> Containers:
    return Containers(
        corpora=settings.corpora_container,
        traces=settings.traces_container,
        payloads=settings.payloads_container,
        results=settings.results_container,
    )


def make_store(settings: Settings) -> BlobStore:
    """Blob Storage when a connection string or account URL is set, else files under RLM_DATA_DIR."""
    containers = containers_of(settings)
    if settings.storage_connection_string or settings.storage_account_url:
        # Imported here so the filesystem default does not pay for the Azure SDK import.
        from shared.storage.blob import AzureBlobStore

        if settings.storage_connection_string:
            return AzureBlobStore.from_connection_string(settings.storage_connection_string, containers)
        assert settings.storage_account_url is not None
        return AzureBlobStore.from_account_url(settings.storage_account_url, containers)
    return FileStore(settings.data_dir, containers)
