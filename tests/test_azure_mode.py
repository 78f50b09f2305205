"""The app configured as in Azure, every Azure part on loopback: keyless Azure OpenAI
through the real Copilot CLI (bearer token from the managed identity), ACA Dynamic
Sessions for the sandbox, Blob Storage on Azurite, and DefaultAzureCredential reaching
an App Service style identity endpoint for both tokens."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_activities import services
from shared.config import get_settings
from shared.models import QueryResult
from shared.storage.blob import AzureBlobStore
from shared.trace import TraceStore
from tests.conftest import MODEL_VARIABLES
from tests.support.aca_server import ACAServer
from tests.support.identity_server import IdentityServer
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import question_of, repl, run_query

pytestmark = pytest.mark.timeout(300)
TOKEN = "loopback-token"


@pytest.fixture
def azure_env(
    model_server: ModelServer, azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, ACAServer, IdentityServer, dict[str, str]]]:
    suffix = uuid.uuid4().hex[:8]
    containers = {name: f"{name}-{suffix}" for name in ("corpora", "traces", "payloads", "results")}
    with IdentityServer(token=TOKEN) as identity, ACAServer(token=TOKEN) as aca:
        for name in MODEL_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        settings = {
            "MODEL_PROVIDER": "azure",
            "MODEL_BASE_URL": model_server.url,
            "COPILOT_HOME_DIR": str(tmp_path / "copilot-home"),
            "SESSION_POOL_ENDPOINT": aca.url,
            "RLM_STORAGE_CONNECTION_STRING": azurite,
            **{f"RLM_{name.upper()}_CONTAINER": container for name, container in containers.items()},
            **identity.environment,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        services.reset()
        yield tmp_path / "state", aca, identity, containers
        services.reset()
    get_settings.cache_clear()


def test_a_fanned_out_query_runs_on_the_azure_parts(azure_env, model_server: ModelServer, azurite: str) -> None:
    state_dir, aca, identity, containers = azure_env
    documents = [{"id": f"log-{i}", "title": f"Log {i}", "content": "storm " * i + "calm " * 3} for i in range(1, 4)]

    def script(request: ScriptedRequest):
        if question_of(request) == "How many storms?":
            return repl(
                "parts = context.split('\\n\\n## ')\n"
                "counts = rlm_query_batch([('Count storms here', p) for p in parts])\n"
                "used_sections = ['Log 3']\n"
                "Final = str(sum(int(c) for c in counts))"
            )
        return repl("Final = str(context.count('storm'))")

    model_server.set_script(script)
    instances: list[str] = []
    status, _ = asyncio.run(
        run_query(state_dir, question="How many storms?", documents=documents, options={"max_depth": 1},
                  on_host=lambda host, iid: instances.extend([iid, *host.children(iid)]))
    )
    assert str(status.runtime_status) == "Completed", status.output
    result = QueryResult.model_validate(status.output)
    assert result.answer == "6"
    assert result.sources[0].document_id == "log-3"

    assert len(model_server.calls) == 4
    assert {c.request.path for c in model_server.calls} == {"/openai/v1/chat/completions"}
    assert {c.request.authorization for c in model_server.calls} == {f"Bearer {TOKEN}"}
    assert {"https://cognitiveservices.azure.com", "https://dynamicsessions.io"} <= set(identity.resources)

    assert aca.identifiers == set(instances) and len(instances) == 4
    assert not aca.kernels  # every session was deleted when its query finished

    store = AzureBlobStore.from_connection_string(azurite, containers=services.store().containers)
    assert TraceStore(store).result("query-1", "query-1").answer == "6"
    assert len(store.list_keys(containers["corpora"])) == 8  # the corpus and 3 sub-contexts, each with its index
