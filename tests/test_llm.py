"""The Copilot SDK transport, through the real Copilot CLI to the scripted model server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from azure.core.credentials import AccessToken

from shared.config import Settings
from shared.llm import (
    CopilotModel,
    ModelError,
    ModelNotConfigured,
    ModelReply,
    ModelTimeout,
    ModelUnreachable,
    close_models,
    find_copilot_cli,
    get_model,
)
from tests.support.model_server import ModelServer, ScriptedError, ScriptedRequest

T = TypeVar("T")
SYSTEM = "You are a careful assistant.\n\nRules:\n  1. answer briefly\n  2. never guess"


def echo(request: ScriptedRequest) -> str:
    return f"echo: {request.prompt}"


def run(settings: Settings, body: Callable[[CopilotModel], Awaitable[T]], **options: bool) -> T:
    """Run `body` with a fresh model on a fresh loop, always closing the CLI afterwards."""

    async def main() -> T:
        model = CopilotModel(settings, **options)
        try:
            return await body(model)
        finally:
            await model.aclose()

    return asyncio.run(main())


def ask(prompt: str, *, system: str = SYSTEM, timeout: float | None = None) -> Callable[[CopilotModel], Awaitable[ModelReply]]:
    return lambda model: model.complete(model="test-model", system=system, prompt=prompt, timeout=timeout)


@pytest.mark.parametrize("model_server", [echo], indirect=True)
def test_completion_returns_scripted_text_with_verbatim_system_prompt_and_usage(
    model_env: Settings, model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="copilot"):
        reply = run(model_env, ask("What is in the corpus?"))
    assert reply.text == "echo: What is in the corpus?"
    assert reply.model == "test-model"
    [call] = model_server.calls
    assert call.request.system == SYSTEM
    assert call.request.prompt == "What is in the corpus?"
    assert not call.request.stream
    assert reply.prompt_tokens == len(SYSTEM.split()) + len(call.request.texts("user")[-1].split())
    assert reply.completion_tokens == len(reply.text.split())
    assert not [r for r in caplog.records if "sendAndWait" in r.getMessage() or r.exc_info]


def test_openai_with_key_sends_it_as_bearer(model_env: Settings, model_server: ModelServer) -> None:
    run(model_env, ask("hi"))
    assert model_server.calls[0].request.authorization == "Bearer test-key"
    assert model_server.calls[0].request.path == "/chat/completions"


def test_openai_without_key_sends_no_authorization(model_env: Settings, model_server: ModelServer) -> None:
    run(model_env.model_copy(update={"model_api_key": None}), ask("hi"))
    assert model_server.calls[0].request.authorization is None


@pytest.mark.parametrize("model_server", [echo], indirect=True)
def test_streaming_provider_path(model_env: Settings, model_server: ModelServer) -> None:
    reply = run(model_env, ask("stream this please"), streaming=True)
    [call] = model_server.calls
    assert call.request.stream and call.request.include_usage
    assert reply.text == "echo: stream this please"
    assert reply.completion_tokens == 4


@pytest.mark.parametrize("model_server", [lambda _: ScriptedError(400, "context length exceeded")], indirect=True)
def test_http_400_is_a_model_error_with_status(model_env: Settings, model_server: ModelServer) -> None:
    with pytest.raises(ModelError) as caught:
        run(model_env, ask("too long"))
    assert caught.value.status == 400
    assert "context length exceeded" in str(caught.value)
    assert "test-model" in str(caught.value)
    assert len(model_server.calls) == 1


def test_timeout_is_a_model_timeout(model_env: Settings, model_server: ModelServer) -> None:
    model_server.set_latency(5.0)
    with pytest.raises(ModelTimeout, match="within 1s"):
        run(model_env, ask("slow", timeout=1))


@pytest.mark.parametrize("model_server", [echo], indirect=True)
def test_concurrent_calls_share_one_client_and_overlap(model_env: Settings, model_server: ModelServer) -> None:
    model_server.set_latency(0.5)

    async def body(model: CopilotModel) -> list[ModelReply]:
        return await asyncio.gather(*(ask(f"question {i}")(model) for i in range(8)))

    replies = run(model_env, body)
    assert [r.text for r in replies] == [f"echo: question {i}" for i in range(8)]
    assert len(model_server.calls) == 8
    assert model_server.max_overlap() > 1


def test_azure_with_key_uses_the_v1_route(model_env: Settings, model_server: ModelServer) -> None:
    run(model_env.model_copy(update={"model_provider": "azure"}), ask("hi"))
    request = model_server.calls[0].request
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers.get("api-key") == "test-key"


def test_azure_api_version_uses_the_deployment_route(model_env: Settings, model_server: ModelServer) -> None:
    settings = model_env.model_copy(update={"model_provider": "azure", "azure_openai_api_version": "2024-10-21"})
    run(settings, ask("hi"))
    request = model_server.calls[0].request
    assert request.path == "/openai/deployments/test-model/chat/completions"
    assert request.query == "api-version=2024-10-21"


class FixedTokenCredential:
    """The identity provider is outside the test boundary, like the model: hand out a token."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **_: object) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("entra-token", int(time.time()) + 3600)


def test_azure_without_key_sends_an_entra_bearer_token(model_env: Settings, model_server: ModelServer) -> None:
    credential = FixedTokenCredential()
    settings = model_env.model_copy(update={"model_provider": "azure", "model_api_key": None})

    async def main() -> None:
        model = CopilotModel(settings, credential=credential)  # type: ignore[arg-type]
        try:
            await ask("one")(model)
            await ask("two")(model)
        finally:
            await model.aclose()

    asyncio.run(main())
    assert [c.request.authorization for c in model_server.calls] == ["Bearer entra-token"] * 2
    assert credential.scopes == ["https://cognitiveservices.azure.com/.default"]


def test_get_model_starts_one_client_per_loop_under_concurrent_first_calls(model_env: Settings) -> None:
    async def main() -> tuple[set[int], ModelReply]:
        try:
            models = await asyncio.gather(*(get_model(model_env) for _ in range(4)))
            reply = await ask("hi")(models[0])
            return {id(m._client) for m in models}, reply
        finally:
            await close_models()

    clients, reply = asyncio.run(main())
    assert len(clients) == 1 and None not in clients
    assert reply.text == "ok"


def copilot_children() -> list[int]:
    """Pids of Copilot CLI processes this test process started (read from /proc)."""
    pids = [int(p) for f in Path(f"/proc/{os.getpid()}/task").glob("*/children") for p in f.read_text().split()]
    return [pid for pid in pids if "copilot-linux-x64" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]


def process_running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_dead_cli_is_replaced_on_the_next_call(model_env: Settings, model_server: ModelServer) -> None:
    async def body(model: CopilotModel) -> ModelReply:
        await ask("before")(model)
        [pid] = copilot_children()
        os.kill(pid, signal.SIGKILL)
        while process_running(pid):
            await asyncio.sleep(0.05)
        return await ask("after")(model)

    assert run(model_env, body).text == "ok"
    assert [c.request.prompt for c in model_server.calls] == ["before", "after"]


def test_no_provider_is_model_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODEL_PROVIDER", "MODEL_BASE_URL", "AZURE_PROJECT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ModelNotConfigured) as caught:
        CopilotModel(Settings())
    assert "MODEL_PROVIDER" in str(caught.value) and "MODEL_BASE_URL" in str(caught.value)
    assert "MODEL_API_KEY" in str(caught.value)


def test_find_copilot_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COPILOT_CLI_PATH", raising=False)
    found = find_copilot_cli()
    assert found.endswith("node_modules/@github/copilot-linux-x64/copilot")
    monkeypatch.setenv("COPILOT_CLI_PATH", "/nonexistent/copilot")
    with pytest.raises(ModelNotConfigured, match="COPILOT_CLI_PATH"):
        find_copilot_cli()


def test_a_cli_without_execute_bit_runs_from_a_private_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = tmp_path / "copilot"
    packaged.write_text(f"#!/bin/sh\necho packaged-{tmp_path.name}\n", encoding="utf-8")
    packaged.chmod(0o444)
    monkeypatch.setenv("COPILOT_CLI_PATH", str(packaged))
    found = find_copilot_cli()
    assert found != str(packaged)
    assert subprocess.run([found], capture_output=True, text=True, check=True).stdout.strip() == f"packaged-{tmp_path.name}"


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@contextmanager
def black_hole() -> Iterator[str]:
    """A port whose listen queue is full and never accepted: connections hang, as they do to
    a host whose firewall drops packets."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            for filler in fillers:
                filler.close()


@pytest.mark.timeout(60)  # the CLI alone retries a refused connection for ~23 s
def test_a_refused_connection_fails_at_once_and_names_the_url(model_env: Settings) -> None:
    url = closed_port_url()
    settings = model_env.model_copy(update={"model_base_url": url, "model_timeout_seconds": 600})
    with pytest.raises(ModelUnreachable) as caught:
        run(settings, ask("anyone there?"))
    assert str(caught.value).startswith(f"cannot reach the model provider at {url} (connection refused)")
    assert "MODEL_BASE_URL" in str(caught.value)


@pytest.mark.timeout(60)  # the CLI alone waits ~80 s for a host that drops packets
def test_a_provider_that_never_accepts_the_connection_fails_after_the_connect_timeout(model_env: Settings) -> None:
    with black_hole() as url:
        settings = model_env.model_copy(update={"model_base_url": url, "model_timeout_seconds": 600})
        with pytest.raises(ModelUnreachable, match=f"{url} \\(no connection within 5 s\\)"):
            run(settings, ask("anyone there?"))


@pytest.mark.parametrize("model_server", [echo], indirect=True)
def test_a_slow_provider_keeps_its_whole_timeout(model_env: Settings, model_server: ModelServer) -> None:
    model_server.set_latency(7.0)  # longer than the connect check allows, well within the call's timeout
    assert run(model_env, ask("take your time", timeout=60)).text == "echo: take your time"


@pytest.mark.timeout(60)
def test_a_provider_that_goes_away_is_found_unreachable_at_its_first_refused_connection(
    model_env: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(model: CopilotModel) -> None:
        await ask("first")(model)
        # Reached a moment ago, so no check before the next call: its refused connection triggers one.
        # (A new address: the stopped scripted server would still answer on the CLI's kept-alive connection.)
        model.settings = model.settings.model_copy(update={"model_base_url": closed_port_url()})
        with pytest.raises(ModelUnreachable, match="connection refused"):
            await ask("second", timeout=600)(model)

    with caplog.at_level(logging.WARNING):
        run(model_env, body)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]  # the error says it all
