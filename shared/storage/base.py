"""The storage interface every layer talks to, and the key layout of DESIGN section 8."""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,1000}$")


class BlobNotFound(KeyError):
    """The container has no blob under that key."""


@dataclass(frozen=True)
class Versioned:
    """A blob's content with the version a conditional replace must name."""

    data: bytes
    version: str


@dataclass(frozen=True)
class Containers:
    corpora: str = "corpora"
    traces: str = "traces"
    payloads: str = "payloads"
    results: str = "results"

    def all(self) -> tuple[str, ...]:
        return (self.corpora, self.traces, self.payloads, self.results)


def corpus_key(data: bytes) -> str:
    """Corpora are content-addressed: the same text is stored once."""
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStore(ABC):
    """Containers of keyed blobs. Writes overwrite, so retried activities stay idempotent."""

    def __init__(self, containers: Containers | None = None) -> None:
        self.containers = containers or Containers()

    @abstractmethod
    def put_bytes(self, container: str, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, container: str, key: str) -> bytes:
        """Raises BlobNotFound."""

    @abstractmethod
    def put_file(self, container: str, key: str, path: Path) -> None:
        """Stream a local file into a blob without reading it all into memory."""

    @abstractmethod
    def local_path(self, container: str, key: str) -> Path:
        """A local file holding the blob's content (the file itself, or a cached download)."""

    @abstractmethod
    def exists(self, container: str, key: str) -> bool: ...

    @abstractmethod
    def put_if_absent(self, container: str, key: str, data: bytes) -> str | None:
        """Create the blob unless one exists, atomically: its version when this call created
        it, else None. Of concurrent callers exactly one gets a version, which makes "start
        once" decisions safe."""

    @abstractmethod
    def read_versioned(self, container: str, key: str) -> Versioned | None:
        """The blob and its version, or None when there is none."""

    @abstractmethod
    def replace_if(self, container: str, key: str, data: bytes, version: str) -> str | None:
        """Overwrite the blob only if it is still at `version` (compare-and-swap): the new
        version when it was, else None."""

    @abstractmethod
    def list_keys(self, container: str, prefix: str = "", limit: int | None = None) -> list[str]:
        """Keys under `prefix` in ascending order, at most `limit` of them."""

    @abstractmethod
    def delete(self, container: str, key: str) -> None:
        """Deleting a missing blob is not an error."""

    def put_text(self, container: str, key: str, text: str) -> None:
        self.put_bytes(container, key, text.encode("utf-8"))

    def get_text(self, container: str, key: str) -> str:
        return self.get_bytes(container, key).decode("utf-8")

    def put_corpus(self, text: str) -> str:
        """Store a corpus once under its sha256 and return that id."""
        data = text.encode("utf-8")
        key = corpus_key(data)
        if not self.exists(self.containers.corpora, key):
            self.put_bytes(self.containers.corpora, key, data)
        return key
