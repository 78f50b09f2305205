"""Reading a query's trace costs what that trace holds: the keys listed, the blobs read and (on the
filesystem) the folders walked stay the same while unrelated traces pile up in the store."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.models import QueryResult
from shared.storage import BlobStore, Containers, FileStore
from shared.storage.base import Versioned
from shared.storage.blob import AzureBlobStore
from shared.trace import InstanceMeta, StepRecord, TraceStore, trace_tree

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class CountingStore(BlobStore):
    """A store that counts what its callers list and read."""

    def __init__(self, inner: BlobStore) -> None:
        super().__init__(inner.containers)
        self.inner = inner
        self.counts: Counter[str] = Counter()

    def put_bytes(self, container: str, key: str, data: bytes) -> None:
        self.inner.put_bytes(container, key, data)

    def get_bytes(self, container: str, key: str) -> bytes:
        self.counts["read"] += 1
        return self.inner.get_bytes(container, key)

    def put_file(self, container: str, key: str, path: Path) -> None:
        self.inner.put_file(container, key, path)

    def local_path(self, container: str, key: str) -> Path:
        return self.inner.local_path(container, key)

    def exists(self, container: str, key: str) -> bool:
        return self.inner.exists(container, key)

    def put_if_absent(self, container: str, key: str, data: bytes) -> str | None:
        return self.inner.put_if_absent(container, key, data)

    def read_versioned(self, container: str, key: str) -> Versioned | None:
        self.counts["read"] += 1
        return self.inner.read_versioned(container, key)

    def replace_if(self, container: str, key: str, data: bytes, version: str) -> str | None:
        return self.inner.replace_if(container, key, data, version)

    def list_keys(self, container: str, prefix: str = "", limit: int | None = None) -> list[str]:
        keys = self.inner.list_keys(container, prefix, limit)
        self.counts["listings"] += 1
        self.counts["listed"] += len(keys)
        return keys

    def delete(self, container: str, key: str) -> None:
        self.inner.delete(container, key)


@pytest.fixture(params=["filesystem", "azurite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    suffix = uuid.uuid4().hex[:8]
    containers = Containers(*(f"{name}-{suffix}" for name in ("corpora", "traces", "payloads", "results")))
    if request.param == "filesystem":
        yield FileStore(tmp_path / "data", containers)
    else:
        yield AzureBlobStore.from_connection_string(request.getfixturevalue("azurite"), containers, cache_dir=tmp_path / "cache")


def write_tree(traces: TraceStore, root: str, *, children: int, steps: int) -> None:
    for instance, parent in [(root, None), *((f"{root}-1-{k}", root) for k in range(children))]:
        meta = InstanceMeta(
            instance_id=instance, root_id=root, parent_id=parent, depth=0 if parent is None else 1, question="q",
            corpus_id="c" * 64, context_chars=10, started_at=NOW,
        )  # fmt: skip
        traces.write_meta(root, meta)
        for step in range(1, steps + 1):
            traces.write_step(
                root, StepRecord(instance_id=instance, step=step, iteration=step, kind="generate", started_at=NOW, reply="r")
            )
        result = QueryResult(answer="a", iterations=steps, instance_id=instance, trace=f"traces/{root}/")
        traces.write_result(root, result)


def cost_of_reading(store: CountingStore, root: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    walked: Counter[str] = Counter()
    real_scandir = os.scandir

    def counting_scandir(path: Any = ".") -> Any:
        walked["folders"] += 1
        return real_scandir(path)

    store.counts.clear()
    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", counting_scandir)
        tree = trace_tree(TraceStore(store), root)
    assert tree is not None and tree.meta.instance_id == root and len(tree.children) == 2
    assert [len(c.steps) for c in tree.children] == [3, 3] and tree.result is not None
    return dict(store.counts) | dict(walked)


def test_reading_a_trace_does_not_touch_unrelated_traces(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingStore(store)
    traces = TraceStore(counting)
    write_tree(traces, "wanted", children=2, steps=3)
    write_tree(traces, "wanted-other", children=1, steps=1)  # shares the root's name as a prefix
    alone = cost_of_reading(counting, "wanted", monkeypatch)

    for n in range(40):
        write_tree(traces, f"unrelated-{n}", children=3, steps=5)
    crowded = cost_of_reading(counting, "wanted", monkeypatch)

    assert crowded == alone
    assert alone["listings"] == 1
    assert alone["listed"] == 3 * (1 + 3 + 1)  # meta, three steps and a result per instance
    assert alone["read"] == alone["listed"]
    assert len(counting.inner.list_keys(store.containers.traces)) > 40 * alone["listed"]


def test_a_listing_walks_only_the_folder_its_prefix_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path)
    for n in range(30):
        store.put_text("traces", f"other-{n}/x/0001.json", "{}")
    store.put_text("traces", "mine/a/0001.json", "{}")
    store.put_text("traces", "mine/b/0002.json", "{}")
    store.put_text("traces", "mine-too/a/0001.json", "{}")
    walked: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": walked.append(str(path)) or real_scandir(path))
    assert store.list_keys("traces", "mine/") == ["mine/a/0001.json", "mine/b/0002.json"]
    assert all("/traces/mine" in w for w in walked) and len(walked) == 3
    walked.clear()
    assert store.list_keys("traces", "mine/a/0") == ["mine/a/0001.json"]
    assert len(walked) == 1
    with pytest.raises(ValueError):
        store.list_keys("traces", "../escape/")
