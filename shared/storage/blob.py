"""Azure Blob Storage backend of the storage interface (sync client: activities run in threads)."""

from __future__ import annotations

import os
import tempfile
import threading
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.storage.base import BlobNotFound, BlobStore, Containers, Versioned, check_key

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

MiB = 1024 * 1024
# Blobs above these sizes move in 4 MiB blocks, `max_concurrency` at a time, so a large
# corpus never sits whole in memory and transfers use several connections.
TRANSFER_OPTIONS = {
    "max_single_put_size": 4 * MiB,
    "max_block_size": 4 * MiB,
    "max_single_get_size": 4 * MiB,
    "max_chunk_get_size": 4 * MiB,
}
DOWNLOAD_ATTEMPTS = 3


class AzureBlobStore(BlobStore):
    """Blobs in Azure Storage; `local_path` keeps a download cache keyed by etag."""

    def __init__(
        self,
        service: BlobServiceClient,
        containers: Containers | None = None,
        *,
        cache_dir: Path | None = None,
        max_concurrency: int = 4,
    ) -> None:
        super().__init__(containers)
        self.service = service
        self.max_concurrency = max_concurrency
        self.cache_dir = Path(
            cache_dir or Path(tempfile.gettempdir()) / "rlm-blob-cache" / (service.account_name or "account")
        )
        self._created: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(
        cls, connection_string: str, containers: Containers | None = None, *, cache_dir: Path | None = None
    ) -> AzureBlobStore:
        service = BlobServiceClient.from_connection_string(connection_string, **TRANSFER_OPTIONS)
        return cls(service, containers, cache_dir=cache_dir)

    @classmethod
    def from_account_url(
        cls,
        account_url: str,
        containers: Containers | None = None,
        *,
        credential: TokenCredential | None = None,
        cache_dir: Path | None = None,
    ) -> AzureBlobStore:
        """Keyless access: the app's identity needs *Storage Blob Data Contributor*."""
        if credential is None:
            from azure.identity import DefaultAzureCredential  # heavy import, only for keyless access

            credential = DefaultAzureCredential()
        service = BlobServiceClient(account_url, credential=credential, **TRANSFER_OPTIONS)
        return cls(service, containers, cache_dir=cache_dir)

    def _container(self, container: str, *, for_write: bool = False) -> ContainerClient:
        """The container's client; writes create the container on first use in this process."""
        client = self.service.get_container_client(check_key(container))
        if for_write and container not in self._created:
            try:
                client.create_container()
            except ResourceExistsError:
                pass
            with self._lock:
                self._created.add(container)
        return client

    def put_bytes(self, container: str, key: str, data: bytes) -> None:
        blob = self._container(container, for_write=True).get_blob_client(check_key(key))
        blob.upload_blob(data, overwrite=True, max_concurrency=self.max_concurrency)

    def put_file(self, container: str, key: str, path: Path) -> None:
        blob = self._container(container, for_write=True).get_blob_client(check_key(key))
        with open(path, "rb") as handle:
            blob.upload_blob(
                handle, length=os.fstat(handle.fileno()).st_size, overwrite=True, max_concurrency=self.max_concurrency
            )

    def get_bytes(self, container: str, key: str) -> bytes:
        blob = self._container(container).get_blob_client(check_key(key))
        try:
            return blob.download_blob(max_concurrency=self.max_concurrency).readall()
        except ResourceNotFoundError:
            raise BlobNotFound(f"{container}/{key}") from None

    def local_path(self, container: str, key: str) -> Path:
        """Download once per blob version: the cache file name carries the blob's etag."""
        blob = self._container(container).get_blob_client(check_key(key))
        base = self.cache_dir / container / key
        for _ in range(DOWNLOAD_ATTEMPTS):
            try:
                etag = blob.get_blob_properties().etag
            except ResourceNotFoundError:
                raise BlobNotFound(f"{container}/{key}") from None
            version = etag.strip('"')
            # '#' never occurs in a key, so `{key}#{etag}` cannot collide with another key.
            target = base.with_name(f"{base.name}#{version}")
            if target.is_file():
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    blob.download_blob(
                        etag=etag, match_condition=MatchConditions.IfNotModified, max_concurrency=self.max_concurrency
                    ).readinto(handle)
            except ResourceModifiedError:
                os.unlink(tmp)
                continue
            except ResourceNotFoundError:
                os.unlink(tmp)
                raise BlobNotFound(f"{container}/{key}") from None
            os.replace(tmp, target)
            for stale in target.parent.glob(f"{base.name}#*"):
                if stale != target:
                    stale.unlink(missing_ok=True)
            return target
        raise RuntimeError(f"{container}/{key} kept changing while it was downloaded")

    def exists(self, container: str, key: str) -> bool:
        return self._container(container).get_blob_client(check_key(key)).exists()

    def put_if_absent(self, container: str, key: str, data: bytes) -> str | None:
        blob = self._container(container, for_write=True).get_blob_client(check_key(key))
        try:
            # overwrite=False sends If-None-Match: *, so the service decides who was first.
            return blob.upload_blob(data, overwrite=False)["etag"]
        except ResourceExistsError:
            return None

    def read_versioned(self, container: str, key: str) -> Versioned | None:
        blob = self._container(container).get_blob_client(check_key(key))
        try:
            download = blob.download_blob()
            return Versioned(download.readall(), download.properties.etag)
        except ResourceNotFoundError:
            return None

    def replace_if(self, container: str, key: str, data: bytes, version: str) -> str | None:
        blob = self._container(container, for_write=True).get_blob_client(check_key(key))
        try:
            written = blob.upload_blob(data, overwrite=True, etag=version, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return written["etag"]

    def list_keys(self, container: str, prefix: str = "", limit: int | None = None) -> list[str]:
        # The service lists names in ascending order, so the first `limit` need no full listing.
        names = self._container(container).list_blob_names(
            name_starts_with=prefix or None, results_per_page=min(limit, 5000) if limit else None
        )
        try:
            return list(islice(names, limit))
        except ResourceNotFoundError:
            return []

    def delete(self, container: str, key: str) -> None:
        try:
            self._container(container).delete_blob(check_key(key), delete_snapshots="include")
        except ResourceNotFoundError:
            pass
