"""Shared fixtures: the scripted model server, the environment pointing the real CLI at it, Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Settings, get_settings
from shared.storage import BlobStore, Containers, FileStore
from shared.storage.blob import AzureBlobStore
from tests.support.azurite import Azurite
from tests.support.model_server import ModelServer

MODEL_VARIABLES = (
    "MODEL_PROVIDER",
    "MODEL_BASE_URL",
    "AZURE_PROJECT_ENDPOINT",
    "MODEL_API_KEY",
    "AZURE_OPENAI_API_VERSION",
    "COPILOT_HOME_DIR",
)


@pytest.fixture
def model_server(request: pytest.FixtureRequest) -> Iterator[ModelServer]:
    """A running scripted model server; the script comes from indirect parametrization
    (`@pytest.mark.parametrize("model_server", [script], indirect=True)`) or `set_script`."""
    with ModelServer(getattr(request, "param", "ok")) as server:
        yield server


@pytest.fixture
def model_env(model_server: ModelServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    """MODEL_* and COPILOT_HOME_DIR set so the real Copilot CLI reaches `model_server`."""
    for name in MODEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_PROVIDER", "openai")
    monkeypatch.setenv("MODEL_BASE_URL", model_server.url)
    monkeypatch.setenv("MODEL_API_KEY", "test-key")
    monkeypatch.setenv("COPILOT_HOME_DIR", str(tmp_path / "copilot-home"))
    get_settings.cache_clear()
    yield Settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A connection string to a real Azurite (blob + queue) shared by the whole run."""
    with Azurite() as emulator:
        yield emulator.connection_string


@pytest.fixture(params=["filesystem", "azurite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """Each test gets fresh containers, so tests sharing one Azurite never see each other's blobs."""
    suffix = uuid.uuid4().hex[:8]
    containers = Containers(*(f"{name}-{suffix}" for name in ("corpora", "traces", "payloads", "results")))
    if request.param == "filesystem":
        yield FileStore(tmp_path / "data", containers)
    else:
        connection_string = request.getfixturevalue("azurite")
        yield AzureBlobStore.from_connection_string(connection_string, containers, cache_dir=tmp_path / "cache")


@pytest.fixture
def rlm_env(model_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The function app's parts rebuilt over a per-test data dir; yields a state dir for a host."""
    from rlm_activities import services

    monkeypatch.setenv("RLM_DATA_DIR", str(tmp_path / "data"))
    services.reset()
    yield tmp_path / "state"
    services.reset()
