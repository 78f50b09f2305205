"""Model calls through the GitHub Copilot SDK with a BYOK provider (DESIGN section 7).

One Copilot CLI process per worker process (per event loop) serves every call: starting
it costs most of a second, a session costs tens of milliseconds. Each call is one fresh
session with the system prompt sent verbatim and no tools, so a model call is a plain
chat completion whose only state is its prompt.

The CLI retries a provider it cannot connect to for ~20 s (a black hole for ~80 s). So a
call first checks that the provider accepts connections (unless it answered in the last
minute), and checks again whenever the CLI reports a failed connection; an unreachable
provider fails within seconds, naming the URL, and a slow one keeps its whole timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from copilot import CopilotClient, CopilotSession, RuntimeConnection
from copilot._jsonrpc import JsonRpcError  # not re-exported; the SDK raises it as is
from copilot.session_events import (
    AssistantMessageData,
    AssistantUsageData,
    ModelCallFailureData,
    ModelCallFailureKind,
    SessionEvent,
)
from pydantic import BaseModel

from shared.config import Settings

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential
    from copilot.session import ProviderConfig

log = logging.getLogger(__name__)

AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
CLI_IN_NODE_MODULES = Path("node_modules/@github/copilot-linux-x64/copilot")
APP_ROOT = Path(__file__).resolve().parents[1]
TOKEN_REFRESH_MARGIN_SECONDS = 300
PING_TIMEOUT_SECONDS = 10
HTTP_STATUS = re.compile(r"\(HTTP (\d{3})\)|^(\d{3})\b")
# A provider must accept a TCP connection within this long to count as reachable.
CONNECT_TIMEOUT_SECONDS = 5.0
# A provider that answered this recently is not probed again before a call (only on failure).
REACHED_FRESH_SECONDS = 60.0


class ModelReply(BaseModel):
    """A reply and its usage; cached tokens are part of the prompt tokens, reasoning tokens
    part of the completion tokens, as providers report them."""

    text: str
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    model: str


class ModelError(RuntimeError):
    """A model call failed; the message says where and why, `status` is the HTTP status if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ModelTimeout(ModelError):
    """No reply within the call's timeout."""


class ModelNotConfigured(ModelError):
    """The settings name no model provider, or the Copilot CLI cannot be found."""


class ModelUnreachable(ModelError):
    """The provider does not accept connections (down, wrong URL or port, unknown host)."""


def find_copilot_cli(settings: Settings | None = None) -> str:
    """The Copilot CLI binary: COPILOT_CLI_PATH, else the npm package beside the app."""
    configured = (settings.copilot_cli_path if settings else None) or os.environ.get("COPILOT_CLI_PATH")
    if configured:
        if os.access(configured, os.X_OK):
            return configured
        if os.path.isfile(configured):
            return _executable_copy(Path(configured))
        raise ModelNotConfigured(f"COPILOT_CLI_PATH={configured} is not a file")
    for root in (APP_ROOT, Path.cwd()):
        candidate = root / CLI_IN_NODE_MODULES
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise ModelNotConfigured(
        f"Copilot CLI not found: set COPILOT_CLI_PATH, or run `npm install` (`make setup`) in "
        f"{APP_ROOT} to get {CLI_IN_NODE_MODULES}"
    )


def _executable_copy(binary: Path) -> str:
    """A zip deployment can drop the execute bit and mount the package read-only (Flex
    Consumption does both), so run a private executable copy instead."""
    target = Path(tempfile.gettempdir()) / f"rlm-copilot-cli-{binary.stat().st_size}-{binary.stat().st_mtime_ns}"
    if not os.access(target, os.X_OK):
        staging = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.copyfile(binary, staging)
        staging.chmod(0o755)
        os.replace(staging, target)
    return str(target)


class _SendAndWaitProbeFilter(logging.Filter):
    """Drops the one JSON-RPC error logged when the CLI lacks `session.sendAndWait`.

    SDK 1.0.27 tries that newer method first and falls back to waiting for idle when the
    npm CLI (1.0.102) answers "method not found": expected, so not worth a warning.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            getattr(record, "method", None) == "session.sendAndWait"
            and isinstance(error, JsonRpcError)
            and error.code == -32601
        )


class _FailedCallFilter(logging.Filter):
    """Drops the SDK's warning that a call failed: the ModelError raised for it says more."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "CopilotSession.send_and_wait failed"


_probe_filter = _SendAndWaitProbeFilter()
logging.getLogger("copilot._jsonrpc").addFilter(_probe_filter)
logging.getLogger("copilot.session").addFilter(_FailedCallFilter())


async def connect_problem(url: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str | None:
    """Why a TCP connection to the host of `url` (or to the proxy the environment routes it
    through) cannot be opened within `timeout`; None when it can."""
    parts = urlsplit(url)
    host, port, via = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port, via = proxied.hostname or "", proxied.port or 80, f"through the proxy {proxied.hostname}:{proxied.port or 80}: "
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return f"{via}no connection within {timeout:g} s"
    except socket.gaierror as exc:
        return f"{via}cannot resolve {host}: {exc.strerror}"
    except OSError as exc:
        return f"{via}{os.strerror(exc.errno).lower() if exc.errno else exc}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


class _AzureToken:
    """An Entra ID bearer token for Azure OpenAI, fetched again shortly before it expires."""

    def __init__(self, credential: TokenCredential | None) -> None:
        self._credential = credential
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:
            if self._token is None or self._token.expires_on - time.time() < TOKEN_REFRESH_MARGIN_SECONDS:
                self._token = await asyncio.to_thread(self._fetch)
            return self._token.token

    def _fetch(self) -> AccessToken:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential  # heavy import, only for keyless Azure

            self._credential = DefaultAzureCredential()
        try:
            return self._credential.get_token(AZURE_SCOPE)
        except Exception as exc:
            raise ModelNotConfigured(
                f"no MODEL_API_KEY and no Azure credential for {AZURE_SCOPE}: {exc}. Set MODEL_API_KEY, "
                "or sign in (az login / managed identity with the Cognitive Services OpenAI User role)"
            ) from exc


def _status_of(message: str) -> int | None:
    match = HTTP_STATUS.search(message)
    return int(next(g for g in match.groups() if g)) if match else None


class CopilotModel:
    """Chat completions through one long-lived Copilot CLI process."""

    def __init__(
        self, settings: Settings, *, credential: TokenCredential | None = None, streaming: bool = False
    ) -> None:
        """`credential` replaces DefaultAzureCredential for keyless Azure; `streaming` asks the
        provider for SSE chunks (for providers or gateways that only stream)."""
        if not settings.model_configured:
            raise ModelNotConfigured(
                "no model provider configured: set MODEL_PROVIDER (openai or azure) and MODEL_BASE_URL "
                "(or AZURE_PROJECT_ENDPOINT), plus MODEL_API_KEY unless Azure sign-in provides a token"
            )
        self.settings = settings
        self.streaming = streaming
        self._cli = find_copilot_cli(settings)
        self._client: CopilotClient | None = None
        self._home: Path | None = None
        self._own_home = False
        self._start_lock = asyncio.Lock()
        self._cleanups: set[asyncio.Task[None]] = set()
        self._azure_token = _AzureToken(credential)
        self._reached_at = -REACHED_FRESH_SECONDS  # monotonic time the provider last answered

    async def start(self) -> None:
        """Start the CLI process once; concurrent callers wait for the same start."""
        async with self._start_lock:
            if self._client is not None:
                return
            os.environ.setdefault("COPILOT_SKIP_CLI_DOWNLOAD", "1")
            home = self._home_dir()
            client = CopilotClient(
                connection=RuntimeConnection.for_stdio(path=self._cli),
                mode="empty",
                base_directory=str(home),
                working_directory=str(home),
                use_logged_in_user=False,
                log_level="error",
            )
            began = time.perf_counter()
            try:
                await client.start()
            except Exception as exc:
                await _quietly(client.force_stop())
                raise ModelError(f"could not start the Copilot CLI ({self._cli}): {exc}") from exc
            log.info("Copilot CLI started in %.2fs", time.perf_counter() - began)
            self._client = client

    def _home_dir(self) -> Path:
        """A private Copilot home: COPILOT_HOME_DIR, else a temp dir removed on close."""
        if self._home is None:
            if self.settings.copilot_home is not None:
                self._home = Path(self.settings.copilot_home)
                self._home.mkdir(parents=True, exist_ok=True)
            else:
                self._home = Path(tempfile.mkdtemp(prefix="rlm-copilot-"))
                self._own_home = True
        return self._home

    async def complete(self, *, model: str, system: str, prompt: str, timeout: float | None = None) -> ModelReply:
        """One model turn: `system` verbatim as the system prompt, `prompt` as the user message."""
        limit = timeout if timeout is not None else self.settings.model_timeout_seconds
        where = f"model {model!r} at {self.settings.model_provider} provider {self.settings.model_base_url}"
        await self._check_reachable()
        client, session = await self._open_session(model, system)
        usage: list[AssistantUsageData] = []
        transport_failed = asyncio.Event()

        def on_event(event: SessionEvent) -> None:
            if isinstance(event.data, AssistantUsageData):
                usage.append(event.data)
            elif isinstance(event.data, ModelCallFailureData) and event.data.failure_kind == ModelCallFailureKind.TRANSPORT:
                transport_failed.set()

        session.on(on_event)
        call = asyncio.ensure_future(session.send_and_wait(prompt, timeout=limit))
        watch = asyncio.ensure_future(self._unreachable(transport_failed))
        try:
            await asyncio.wait({call, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not call.done():
                await _quietly(session.abort())
                # Not cancelled (cancelling it mid-request trips the SDK's JSON-RPC reader):
                # it ends when the session is disconnected below, and its outcome is moot.
                call.add_done_callback(_outcome_moot)
                raise self._unreachable_error(watch.result())
            event = call.result()
        except TimeoutError:
            await _quietly(session.abort())
            raise ModelTimeout(f"no reply from {where} within {limit:g}s (MODEL_TIMEOUT_SECONDS)") from None
        except ModelError:
            raise
        except Exception as exc:
            if not await self._alive(client):
                raise ModelError(f"the Copilot CLI stopped during a call to {where}: {exc}") from exc
            message = str(exc).removeprefix("Session error: ")
            raise ModelError(f"{where} failed: {message}", status=_status_of(message)) from exc
        finally:
            watch.cancel()
            self._clean_up_later(client, session)
        if event is None or not isinstance(event.data, AssistantMessageData):
            raise ModelError(f"{where} returned no assistant message")
        self._reached_at = time.monotonic()
        return ModelReply(
            text=event.data.content,
            prompt_tokens=sum(u.input_tokens or 0 for u in usage),
            cached_tokens=sum(u.cache_read_tokens or 0 for u in usage),
            completion_tokens=sum(u.output_tokens or 0 for u in usage),
            reasoning_tokens=sum(u.reasoning_tokens or 0 for u in usage),
            model=usage[-1].model if usage else model,
        )

    async def _check_reachable(self) -> None:
        """Before a session is opened, unless the provider answered in the last minute."""
        if time.monotonic() - self._reached_at <= REACHED_FRESH_SECONDS:
            return
        problem = await connect_problem(self.settings.model_base_url or "")
        if problem is not None:
            raise self._unreachable_error(problem)
        self._reached_at = time.monotonic()

    async def _unreachable(self, transport_failed: asyncio.Event) -> str:
        """Returns why the provider cannot be reached, once a failed connection of the call is
        followed by a failed check; never returns while the provider accepts connections,
        however slowly it answers."""
        while True:
            await transport_failed.wait()
            transport_failed.clear()
            problem = await connect_problem(self.settings.model_base_url or "")
            if problem is not None:
                return problem

    def _unreachable_error(self, problem: str) -> ModelUnreachable:
        return ModelUnreachable(
            f"cannot reach the model provider at {self.settings.model_base_url} ({problem}): "
            "check MODEL_BASE_URL and that the service is running"
        )

    async def _open_session(self, model: str, system: str) -> tuple[CopilotClient, CopilotSession]:
        """A fresh session; a CLI that died since the last call is replaced once, transparently."""
        restarted = False
        while True:
            await self.start()
            client = self._client
            assert client is not None
            try:
                session = await client.create_session(
                    model=model,
                    provider=await self._provider(),
                    system_message={"mode": "replace", "content": system},
                    available_tools=[],
                    streaming=self.streaming,
                )
                return client, session
            except ModelError:
                raise
            except Exception as exc:
                if restarted or await self._alive(client):
                    raise ModelError(f"could not open a Copilot session for model {model!r}: {exc}") from exc
                restarted = True
                log.warning("Copilot CLI stopped (%s); starting a new one", exc)

    async def _alive(self, client: CopilotClient) -> bool:
        """Ping the CLI; a dead one is dropped so the next call starts a new process."""
        try:
            await asyncio.wait_for(client.ping(), PING_TIMEOUT_SECONDS)
            return True
        except Exception:
            async with self._start_lock:
                if self._client is client:
                    self._client = None
            await _quietly(client.force_stop())
            return False

    async def _provider(self) -> ProviderConfig:
        """The BYOK provider block: key if given, else (Azure) an Entra ID bearer token."""
        s = self.settings
        assert s.model_provider is not None and s.model_base_url is not None
        provider: ProviderConfig = {"type": s.model_provider, "base_url": s.model_base_url.rstrip("/")}
        if s.model_api_key:
            provider["api_key"] = s.model_api_key
        elif s.model_provider == "azure":
            provider["bearer_token"] = await self._azure_token.get()
        if s.model_provider == "azure" and s.azure_openai_api_version:
            provider["azure"] = {"api_version": s.azure_openai_api_version}
        return provider

    def _clean_up_later(self, client: CopilotClient, session: CopilotSession) -> None:
        """Detach and delete the session off the reply's path so sessions never pile up."""
        task = asyncio.get_running_loop().create_task(self._delete_session(client, session))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    @staticmethod
    async def _delete_session(client: CopilotClient, session: CopilotSession) -> None:
        try:
            await session.disconnect()
            await client.delete_session(session.session_id)
        except Exception as exc:  # the CLI may already be gone; nothing is left to free then
            log.debug("could not delete Copilot session %s: %s", session.session_id, exc)

    async def aclose(self) -> None:
        """Finish pending session clean-ups, stop the CLI, remove a temp home."""
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        async with self._start_lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                await client.stop()
            except Exception:
                await _quietly(client.force_stop())
        if self._own_home and self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None
            self._own_home = False


def _outcome_moot(call: asyncio.Future[Any]) -> None:
    if not call.cancelled():
        log.debug("abandoned call ended with %r", call.exception())


async def _quietly(awaitable: Any) -> None:
    """Best-effort clean-up whose failure must not mask the error being reported."""
    try:
        await awaitable
    except Exception as exc:
        log.debug("ignored during clean-up: %r", exc)


_models: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], CopilotModel]] = (
    weakref.WeakKeyDictionary()
)
_models_lock = threading.Lock()


def _model_key(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.model_provider,
        settings.model_base_url,
        settings.model_api_key,
        settings.azure_openai_api_version,
        settings.copilot_cli_path,
        settings.copilot_home,
    )


async def get_model(settings: Settings) -> CopilotModel:
    """The started CopilotModel of this event loop for these settings (one CLI per loop)."""
    loop = asyncio.get_running_loop()
    key = _model_key(settings)
    with _models_lock:
        per_loop = _models.setdefault(loop, {})
        model = per_loop.get(key)
        if model is None:
            model = per_loop[key] = CopilotModel(settings)
    await model.start()
    return model


_starting: set[asyncio.Task[None]] = set()


def start_model(settings: Settings, then: Callable[[CopilotModel], None] | None = None) -> None:
    """Start this loop's model (its CLI takes most of a second) without waiting for it, for
    code that knows a call will come; `then` runs once it has started. A failure is left for
    the call itself to report."""

    async def starting() -> None:
        try:
            model = await get_model(settings)
        except ModelError as exc:
            log.debug("could not start the model ahead of a call: %s", exc)
            return
        if then is not None:
            then(model)

    task = asyncio.get_running_loop().create_task(starting())
    _starting.add(task)
    task.add_done_callback(_starting.discard)



async def close_models() -> None:
    """Close every model of the running loop (at host shutdown or a test's end)."""
    with _models_lock:
        models = list(_models.pop(asyncio.get_running_loop(), {}).values())
    for model in models:
        await model.aclose()
