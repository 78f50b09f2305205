"""The ACA Dynamic Sessions client, over real HTTP against the loopback ACA-compatible server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from shared.config import Settings
from shared.sandbox import CellLimits, SandboxExecutor, make_executor
from shared.sandbox.aca import LEGACY_API_VERSION, SCOPE, ACABackend, ACAError, check_identifier
from shared.storage import FileStore
from tests.support.aca_server import ACAServer

LIMITS = CellLimits(timeout_seconds=30, memory_mb=1024, output_max_chars=100_000)
CORPUS = "## One\nfirst section\n\n## Two\nsecond section\n"


class LoopbackCredential:
    """A TokenCredential for the loopback server: hands out its static token and counts requests."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture(scope="module")
def server() -> Iterator[ACAServer]:
    with ACAServer() as running:
        yield running


@pytest.fixture
def credential(server: ACAServer) -> LoopbackCredential:
    return LoopbackCredential(server.token)


@pytest.fixture
def backend(server: ACAServer, credential: LoopbackCredential) -> Iterator[ACABackend]:
    backend = ACABackend(server.url, LIMITS, credential=credential, backoff_seconds=0.01)
    yield backend
    backend.close()


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def test_code_runs_in_a_persistent_session(backend: ACABackend, credential: LoopbackCredential) -> None:
    first = backend.run_code("sess-plain", "x = 20\nprint('hello')\nx + 1", 30)
    assert (first.succeeded, first.stdout, first.result) == (True, "hello\n", "21")
    assert backend.run_code("sess-plain", "x * 2", 30).result == "40"
    assert credential.scopes[0] == (SCOPE,)
    assert len(credential.scopes) == 1  # the token is cached


def test_failed_status_is_surfaced(backend: ACABackend) -> None:
    execution = backend.run_code("sess-fail", "def f():\n    raise KeyError('boom')\nf()", 30)
    assert not execution.succeeded
    assert execution.status == "Failed"
    assert "KeyError: 'boom'" in execution.stderr


def test_upload_download_and_missing_file(backend: ACABackend, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(bytes(range(256)) * 100)
    backend.upload("sess-files", "data.bin", source)
    assert backend.download("sess-files", "data.bin") == source.read_bytes()
    assert backend.run_code("sess-files", "len(open('data.bin', 'rb').read())", 30).result == "25600"
    with pytest.raises(FileNotFoundError):
        backend.download("sess-files", "nope.txt")


def test_delete_session_drops_its_state(backend: ACABackend) -> None:
    backend.run_code("sess-del", "kept = 1", 30)
    backend.delete_session("sess-del")
    assert "NameError" in backend.run_code("sess-del", "kept", 30).stderr
    backend.delete_session("sess-never-used")


def test_429_is_retried_after_retry_after(server: ACAServer, backend: ACABackend) -> None:
    server.fail_next(429, retry_after=0.05)
    assert backend.run_code("sess-retry", "6 * 7", 30).result == "42"
    assert [entry for entry in server.log if entry[1] == "/executions"][-2:] == [
        ("POST", "/executions", 429),
        ("POST", "/executions", 200),
    ]


def test_persistent_5xx_gives_a_clear_error(server: ACAServer, credential: LoopbackCredential) -> None:
    backend = ACABackend(server.url, LIMITS, credential=credential, max_attempts=3, backoff_seconds=0.01)
    server.fail_next(503, count=3)
    with pytest.raises(ACAError) as failure:
        backend.run_code("sess-503", "1", 30)
    assert failure.value.status_code == 503
    backend.close()


def test_wrong_token_is_an_error(server: ACAServer) -> None:
    backend = ACABackend(server.url, LIMITS, credential=LoopbackCredential("wrong"), backoff_seconds=0.01)
    with pytest.raises(ACAError) as failure:
        backend.run_code("sess-auth", "1", 30)
    assert failure.value.status_code == 401
    backend.close()


def test_legacy_response_shape(server: ACAServer, credential: LoopbackCredential) -> None:
    backend = ACABackend(server.url, LIMITS, credential=credential, api_version=LEGACY_API_VERSION)
    ok = backend.run_code("sess-legacy", "print('hi')\n3", 30)
    assert (ok.succeeded, ok.stdout, ok.result) == (True, "hi\n", "3")
    assert not backend.run_code("sess-legacy", "1/0", 30).succeeded
    backend.close()


@pytest.mark.parametrize("bad", ["abc", "x" * 129, "has space", "-leading"])
def test_identifier_validation(bad: str) -> None:
    with pytest.raises(ValueError):
        check_identifier(bad)
    assert check_identifier("a" * 128) == "a" * 128


def test_executor_suspend_resume_and_long_output(backend: ACABackend, store: FileStore) -> None:
    executor = SandboxExecutor(backend, store, LIMITS)
    executor.open("aca-exec-1", store.put_corpus(CORPUS))
    code = (
        "parts = context.split('## ')[1:]\n"
        "answers = rlm_query_batch([('summarise', p) for p in parts] * 4)\n"
        "print('y' * 20000)\n"
        "Final = ' / '.join(answers)\n"
    )
    first = executor.execute("aca-exec-1", "c1", code)
    assert first.status == "suspended" and len(first.pending) == 8
    texts = {p.id: executor.read_sub_context("aca-exec-1", p.sub_context_file or "") for p in first.pending}
    done = executor.resume("aca-exec-1", "c1", {rid: text.split("\n")[0] for rid, text in texts.items()})
    assert done.status == "done"
    assert done.final == " / ".join(["One", "Two"] * 4)
    assert done.stdout == "y" * 20000 + "\n"  # longer than ACA's 4096-character stdout
    executor.close("aca-exec-1")


def test_executor_rebuilds_an_expired_session(server: ACAServer, backend: ACABackend, store: FileStore) -> None:
    executor = SandboxExecutor(backend, store, LIMITS)
    executor.open("aca-exec-2", store.put_corpus(CORPUS))
    executor.execute("aca-exec-2", "c1", "n = int(llm_query('a number'))")
    executor.resume("aca-exec-2", "c1", {"c1.0": "41"})
    server.drop("aca-exec-2")  # what a cooldown expiry looks like to the client
    result = executor.execute("aca-exec-2", "c2", "n + 1")
    assert (result.status, result.stdout) == ("done", "42\n")


def test_executor_timeout_deletes_and_rebuilds(server: ACAServer, credential: LoopbackCredential, store: FileStore) -> None:
    limits = CellLimits(timeout_seconds=2, memory_mb=1024, output_max_chars=10_000)
    backend = ACABackend(server.url, limits, credential=credential, backoff_seconds=0.01)
    executor = SandboxExecutor(backend, store, limits)
    executor.open("aca-exec-3", store.put_corpus(CORPUS))
    executor.execute("aca-exec-3", "c1", "kept = 'yes'")
    assert executor.execute("aca-exec-3", "c2", "while True:\n    pass").status == "timeout"
    assert ("DELETE", "/session", 204) in server.log
    assert executor.execute("aca-exec-3", "c3", "kept").stdout == "'yes'\n"
    backend.close()


def test_make_executor_with_pool_endpoint_is_aca(store: FileStore) -> None:
    executor = make_executor(Settings(SESSION_POOL_ENDPOINT="https://pool.example.test/"), store)
    assert isinstance(executor.backend, ACABackend)
    assert executor.backend.endpoint == "https://pool.example.test"
