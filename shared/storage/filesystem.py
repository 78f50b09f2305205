"""The embedded default: blobs are files under a data dir, `{root}/{container}/{key}`."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.storage.base import BlobNotFound, BlobStore, Containers, Versioned, check_key

TMP_PREFIX = ".tmp-"


class FileStore(BlobStore):
    def __init__(self, root: Path, containers: Containers | None = None) -> None:
        super().__init__(containers)
        self.root = Path(root).resolve()

    def _path(self, container: str, key: str) -> Path:
        return self.root / check_key(container) / check_key(key)

    def _temp_beside(self, path: Path, data: bytes) -> str:
        """A fully written temporary file in the target's folder, ready to be moved or linked."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return tmp

    def put_bytes(self, container: str, key: str, data: bytes) -> None:
        path = self._path(container, key)
        os.replace(self._temp_beside(path, data), path)

    def put_file(self, container: str, key: str, path: Path) -> None:
        target = self._path(container, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TMP_PREFIX)
        os.close(fd)
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)

    def get_bytes(self, container: str, key: str) -> bytes:
        try:
            return self._path(container, key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"{container}/{key}") from None

    def local_path(self, container: str, key: str) -> Path:
        path = self._path(container, key)
        if not path.is_file():
            raise BlobNotFound(f"{container}/{key}")
        return path

    def exists(self, container: str, key: str) -> bool:
        return self._path(container, key).is_file()

    def put_if_absent(self, container: str, key: str, data: bytes) -> str | None:
        # link() fails when the name exists, and the file it publishes is already complete.
        path = self._path(container, key)
        tmp = self._temp_beside(path, data)
        try:
            os.link(tmp, path)
            return _version(data)
        except FileExistsError:
            return None
        finally:
            os.unlink(tmp)

    def read_versioned(self, container: str, key: str) -> Versioned | None:
        try:
            data = self._path(container, key).read_bytes()
        except FileNotFoundError:
            return None
        return Versioned(data, _version(data))

    def replace_if(self, container: str, key: str, data: bytes, version: str) -> str | None:
        path = self._path(container, key)
        with self._locked(container):
            try:
                if _version(path.read_bytes()) != version:
                    return None
            except FileNotFoundError:
                return None
            os.replace(self._temp_beside(path, data), path)
            return _version(data)

    @contextmanager
    def _locked(self, container: str) -> Iterator[None]:
        """Serialize compare-and-swap within a container, across threads and processes."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{check_key(container)}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def list_keys(self, container: str, prefix: str = "", limit: int | None = None) -> list[str]:
        base = self.root / check_key(container)
        # Walk only the folder the prefix names, not the whole container.
        folder = base / check_key(prefix.rsplit("/", 1)[0]) if "/" in prefix else base
        if not folder.is_dir():
            return []
        found = sorted(
            f"{os.path.relpath(top, base)}/{name}".removeprefix("./")
            for top, _, names in os.walk(folder)
            for name in names
            if not name.startswith(TMP_PREFIX)
        )
        keys = [k for k in found if k.startswith(prefix)]
        return keys if limit is None else keys[:limit]

    def delete(self, container: str, key: str) -> None:
        self._path(container, key).unlink(missing_ok=True)


def _version(data: bytes) -> str:
    """Content is the version: a replace that names it saw exactly these bytes."""
    return hashlib.sha256(data).hexdigest()
