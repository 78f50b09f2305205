"""The embedded default: blobs are files under a data dir, `{root}/{container}/{key}`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from shared.storage.base import BlobNotFound, BlobStore, Containers, check_key


class FileStore(BlobStore):
    def __init__(self, root: Path, containers: Containers | None = None) -> None:
        super().__init__(containers)
        self.root = Path(root).resolve()

    def _path(self, container: str, key: str) -> Path:
        return self.root / check_key(container) / check_key(key)

    def put_bytes(self, container: str, key: str, data: bytes) -> None:
        path = self._path(container, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def put_file(self, container: str, key: str, path: Path) -> None:
        target = self._path(container, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
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

    def list_keys(self, container: str, prefix: str = "") -> list[str]:
        """Walks only the folder the prefix names, so a listing costs what that folder holds
        (as Blob Storage's prefix listing does), not what the container holds."""
        base = self.root / check_key(container)
        folder = prefix.rpartition("/")[0]
        start = base / check_key(folder) if folder else base
        if not start.is_dir():
            return []
        keys = []
        for directory, _, names in os.walk(start):
            relative = Path(directory).relative_to(base).as_posix()
            for name in names:
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix) and not name.startswith(".tmp-"):
                    keys.append(key)
        return sorted(keys)

    def delete(self, container: str, key: str) -> None:
        self._path(container, key).unlink(missing_ok=True)
