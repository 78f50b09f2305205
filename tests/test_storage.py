"""One contract for every storage backend: the filesystem store and Blob Storage on Azurite."""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from shared.config import Settings
from shared.storage import BlobNotFound, BlobStore, Containers, FileStore, corpus_key, make_store
from shared.storage.blob import AzureBlobStore


def test_put_get_exists_delete(store: BlobStore) -> None:
    traces = store.containers.traces
    assert not store.exists(traces, "q1/0001.json")
    store.put_text(traces, "q1/0001.json", '{"step": 1}')
    assert store.exists(traces, "q1/0001.json")
    assert store.get_text(traces, "q1/0001.json") == '{"step": 1}'
    store.put_bytes(traces, "q1/0001.json", b"overwritten")
    assert store.get_bytes(traces, "q1/0001.json") == b"overwritten"
    store.delete(traces, "q1/0001.json")
    store.delete(traces, "q1/0001.json")
    assert not store.exists(traces, "q1/0001.json")


def test_list_keys_by_prefix(store: BlobStore) -> None:
    results = store.containers.results
    assert store.list_keys(results) == []
    for key in ("b/2.json", "a/1.json", "a/0.json", "c.jsonl"):
        store.put_text(results, key, key)
    assert store.list_keys(results) == ["a/0.json", "a/1.json", "b/2.json", "c.jsonl"]
    assert store.list_keys(results, "a/") == ["a/0.json", "a/1.json"]
    assert store.list_keys(results, "zzz") == []
    assert store.list_keys(results, limit=2) == ["a/0.json", "a/1.json"]
    assert store.list_keys(results, "a/", limit=1) == ["a/0.json"]


def test_put_if_absent_creates_once(store: BlobStore) -> None:
    payloads = store.containers.payloads
    created = store.put_if_absent(payloads, "claims/x.json", b"first")
    assert created is not None and created == store.read_versioned(payloads, "claims/x.json").version  # type: ignore[union-attr]
    assert store.put_if_absent(payloads, "claims/x.json", b"second") is None
    assert store.get_bytes(payloads, "claims/x.json") == b"first"
    assert store.list_keys(payloads, "claims/") == ["claims/x.json"]


def test_concurrent_put_if_absent_has_exactly_one_winner(store: BlobStore) -> None:
    payloads = store.containers.payloads
    bodies = [f"body {n}".encode() for n in range(20)]
    barrier = threading.Barrier(len(bodies))

    def create(body: bytes) -> bool:
        barrier.wait()
        return store.put_if_absent(payloads, "race.json", body) is not None

    with ThreadPoolExecutor(len(bodies)) as pool:
        won = list(pool.map(create, bodies))
    assert won.count(True) == 1
    assert store.get_bytes(payloads, "race.json") == bodies[won.index(True)]


def test_replace_if_is_compare_and_swap(store: BlobStore) -> None:
    payloads = store.containers.payloads
    assert store.read_versioned(payloads, "slot") is None
    assert store.replace_if(payloads, "slot", b"x", "any-version") is None
    store.put_bytes(payloads, "slot", b"one")
    first = store.read_versioned(payloads, "slot")
    assert first is not None and first.data == b"one"
    written = store.replace_if(payloads, "slot", b"two", first.version)
    assert store.replace_if(payloads, "slot", b"three", first.version) is None
    second = store.read_versioned(payloads, "slot")
    assert second is not None and second.data == b"two" and second.version == written != first.version


def test_concurrent_replace_if_from_one_version_has_one_winner(store: BlobStore) -> None:
    payloads = store.containers.payloads
    store.put_bytes(payloads, "slot", b"free")
    seen = store.read_versioned(payloads, "slot")
    assert seen is not None
    barrier = threading.Barrier(10)

    def take(n: int) -> bool:
        barrier.wait()
        return store.replace_if(payloads, "slot", f"taken by {n}".encode(), seen.version) is not None

    with ThreadPoolExecutor(10) as pool:
        won = list(pool.map(take, range(10)))
    assert won.count(True) == 1
    assert store.get_bytes(payloads, "slot") == f"taken by {won.index(True)}".encode()


def test_missing_blob_is_blob_not_found(store: BlobStore) -> None:
    payloads = store.containers.payloads
    with pytest.raises(BlobNotFound):
        store.get_bytes(payloads, "nope")
    with pytest.raises(BlobNotFound):
        store.local_path(payloads, "nope")
    store.put_text(payloads, "present", "x")
    with pytest.raises(BlobNotFound):
        store.get_text(payloads, "absent")


def test_put_file_and_local_path_of_a_multi_megabyte_file(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(9 * 1024 * 1024 + 123)
    source.write_bytes(data)
    payloads = store.containers.payloads
    store.put_file(payloads, "sub/big.bin", source)
    local = store.local_path(payloads, "sub/big.bin")
    assert local.read_bytes() == data
    assert store.get_bytes(payloads, "sub/big.bin") == data


def test_local_path_follows_a_changed_blob(store: BlobStore) -> None:
    payloads = store.containers.payloads
    store.put_text(payloads, "ctx", "first")
    first = store.local_path(payloads, "ctx")
    assert store.local_path(payloads, "ctx") == first
    store.put_text(payloads, "ctx", "second version")
    assert store.local_path(payloads, "ctx").read_text() == "second version"


def test_put_corpus_is_content_addressed(store: BlobStore) -> None:
    text = "## Title\nSome content with a needle.\n"
    key = store.put_corpus(text)
    assert key == corpus_key(text.encode())
    assert store.put_corpus(text) == key
    assert store.list_keys(store.containers.corpora) == [key]
    assert store.get_text(store.containers.corpora, key) == text


def test_invalid_keys_are_rejected(store: BlobStore) -> None:
    for key in ("../escape", "a/../b", "/absolute", "with space"):
        with pytest.raises(ValueError):
            store.put_text(store.containers.traces, key, "x")


def test_blob_cache_keeps_only_the_current_version(azurite: str, tmp_path: Path) -> None:
    store = AzureBlobStore.from_connection_string(azurite, Containers(payloads=f"p-{uuid.uuid4().hex[:8]}"),
                                                  cache_dir=tmp_path / "cache")
    container = store.containers.payloads
    for text in ("v1", "v2", "v3"):
        store.put_text(container, "doc", text)
        store.local_path(container, "doc")
    assert [p.name.split("#")[0] for p in (tmp_path / "cache" / container).iterdir()] == ["doc"]


def test_make_store_picks_the_backend(azurite: str, tmp_path: Path) -> None:
    files = make_store(Settings(RLM_DATA_DIR=str(tmp_path / "d"), RLM_STORAGE_CONNECTION_STRING=None,
                                RLM_STORAGE_ACCOUNT_URL=None))
    assert isinstance(files, FileStore) and files.root == (tmp_path / "d").resolve()
    blobs = make_store(Settings(RLM_STORAGE_CONNECTION_STRING=azurite, RLM_RESULTS_CONTAINER="batch-results"))
    assert isinstance(blobs, AzureBlobStore) and blobs.containers.results == "batch-results"
    blobs.put_text("batch-results", "b1.jsonl", "{}\n")
    service = BlobServiceClient.from_connection_string(azurite)
    assert service.get_container_client("batch-results").get_blob_client("b1.jsonl").download_blob().readall() == b"{}\n"
