"""Blob-shaped storage: one interface, a filesystem backend and an Azure Blob backend."""

from shared.storage.base import BlobNotFound, BlobStore, Containers, corpus_key
from shared.storage.filesystem import FileStore

__all__ = ["BlobNotFound", "BlobStore", "Containers", "FileStore", "corpus_key"]
