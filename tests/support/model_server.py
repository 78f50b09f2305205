"""A scripted OpenAI-compatible model server on loopback.

The model is the one part tests cannot run for real, so this server stands in for
the provider behind the real Copilot CLI. A script (a callable) picks each reply
from the request; every request is recorded so tests can count model calls and
check whether they overlapped.

It also serves deterministic embeddings: a hashed bag of words, so texts sharing words
are near each other and a passage is nearest to a question that names what it says.

Usage reports cached prompt tokens the way a provider's prefix cache does: the part of
the prompt that repeats the start of an earlier request to the same model is cached.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

DATETIME_PREFIX = re.compile(r"^\s*<current_datetime>.*?</current_datetime>\s*", re.DOTALL)
CHAT_PATHS = re.compile(
    r"^(?:/v1|/openai/v1|/openai/deployments/(?P<deployment>[^/]+))?/chat/completions$"
)
EMBEDDING_PATHS = re.compile(r"^(?:/v1|/openai/v1|/openai/deployments/(?P<deployment>[^/]+))?/embeddings$")
MODELS_PATHS = {"/models", "/v1/models", "/openai/v1/models"}
EMBEDDING_DIMENSIONS = 1024
WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class ScriptedReply:
    """A reply that also reports reasoning tokens (counted in completion tokens, as OpenAI does)."""

    text: str
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class ScriptedError:
    """Reply with an HTTP error instead of a completion (to exercise error paths)."""

    status: int = 500
    message: str = "scripted failure"


def _text_of(content: Any) -> str:
    """Message content is a string or a list of typed parts; keep the text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


@dataclass(frozen=True)
class ScriptedRequest:
    """One chat-completion request as a script sees it."""

    path: str
    query: str
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes = b""  # the body as sent: what a provider's prefix cache compares

    def transcript(self) -> list[tuple[str, str]]:
        """Every message as (role, text), in order: what a provider's prompt cache sees."""
        return [(str(m.get("role", "")), _text_of(m.get("content"))) for m in self.messages]

    def texts(self, role: str) -> list[str]:
        return [_text_of(m.get("content")) for m in self.messages if m.get("role") == role]

    @property
    def system(self) -> str:
        """The system prompt (all system messages joined)."""
        return "\n".join(self.texts("system"))

    @property
    def prompt(self) -> str:
        """The last user message without the CLI's `<current_datetime>` prefix."""
        users = self.texts("user")
        return DATETIME_PREFIX.sub("", users[-1]) if users else ""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    def mentions(self, text: str) -> bool:
        """True when the text appears in the system prompt or the last user message."""
        return text in self.system or text in self.prompt


Reply = str | ScriptedReply | ScriptedError
Script = Callable[[ScriptedRequest], Reply]
Latency = float | Callable[[ScriptedRequest], float]


@dataclass
class RecordedCall:
    """A chat-completion request with when it arrived and when it was answered."""

    request: ScriptedRequest
    received: float
    answered: float | None = None
    status: int | None = None
    reply: str | None = None
    usage: dict[str, Any] | None = None  # as reported to the client


@dataclass(frozen=True)
class EmbeddingCall:
    """One embeddings request: which model, how many inputs, with which credentials."""

    path: str
    query: str
    model: str
    inputs: list[str]
    headers: dict[str, str]


def hashed_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit vector of signed, log-scaled word counts hashed into `dimensions` buckets."""
    counts: dict[str, int] = {}
    for word in WORD.findall(text.lower()):
        counts[word] = counts.get(word, 0) + 1
    vector = [0.0] * dimensions
    for word, count in counts.items():
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % dimensions] += (1.0 + math.log(count)) * (1 if digest >> 63 else -1)
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def sequence(*replies: Reply) -> Script:
    """A script answering the given replies in order, then repeating the last one."""
    lock = threading.Lock()
    remaining = list(replies)

    def script(_: ScriptedRequest) -> Reply:
        with lock:
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return script


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())


@dataclass
class _State:
    script: Script
    latency: Latency
    calls: list[RecordedCall] = field(default_factory=list)
    other_requests: list[tuple[str, str]] = field(default_factory=list)
    embedding_calls: list[EmbeddingCall] = field(default_factory=list)
    embedding_errors: list[tuple[ScriptedError, dict[str, str]]] = field(default_factory=list)
    script_failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    prompts: dict[str, list[list[tuple[str, str]]]] = field(default_factory=dict)  # model -> prompts seen

    def cached_tokens(self, request: ScriptedRequest) -> int:
        """Tokens of the longest prefix this prompt shares with an earlier one to the same
        model (then remembers it): whole messages, then whole words of the first that differs."""
        prompt = [(str(m.get("role")), _text_of(m.get("content"))) for m in request.messages]
        with self.lock:
            earlier = self.prompts.setdefault(request.model, [])
            best = max((_shared_tokens(prompt, seen) for seen in earlier), default=0)
            earlier.append(prompt)
        return best


def _shared_tokens(prompt: list[tuple[str, str]], seen: list[tuple[str, str]]) -> int:
    shared = 0
    for (role, text), (seen_role, seen_text) in zip(prompt, seen, strict=False):
        if role != seen_role:
            break
        if text == seen_text:
            shared += count_tokens(text)
            continue
        words, seen_words = text.split(), seen_text.split()
        common = next((i for i, (a, b) in enumerate(zip(words, seen_words, strict=False)) if a != b), min(len(words), len(seen_words)))
        return shared + common
    return shared


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log lives in the server state."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        self.server.state.other_requests.append(("GET", self.path))
        if path in MODELS_PATHS:
            self._json(200, {"object": "list", "data": []})
        else:
            self._json(404, {"error": {"message": f"no route GET {path}"}})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        match = CHAT_PATHS.match(url.path.rstrip("/"))
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        embeddings = EMBEDDING_PATHS.match(url.path.rstrip("/"))
        if embeddings is not None:
            self._embed(url.path, url.query, embeddings.group("deployment"), json.loads(raw or b"{}"))
            return
        if match is None:
            self.server.state.other_requests.append(("POST", self.path))
            self._json(404, {"error": {"message": f"no route POST {url.path}"}})
            return
        body = json.loads(raw or b"{}")
        request = ScriptedRequest(
            path=url.path,
            query=url.query,
            model=match.group("deployment") or body.get("model", ""),
            messages=body.get("messages", []),
            stream=bool(body.get("stream")),
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
        )
        self._answer(request)

    def _embed(self, path: str, query: str, deployment: str | None, body: dict[str, Any]) -> None:
        given = body.get("input")
        inputs = [given] if isinstance(given, str) else given
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
            self._json(400, {"error": {"message": "'input' must be a non-empty string or list of non-empty strings"}})
            return
        model = deployment or body.get("model", "")
        call = EmbeddingCall(path, query, model, inputs, {k.lower(): v for k, v in self.headers.items()})
        with self.server.state.lock:
            self.server.state.embedding_calls.append(call)
            failure = self.server.state.embedding_errors.pop(0) if self.server.state.embedding_errors else None
        if failure is not None:
            error, headers = failure
            self._json(error.status, {"error": {"message": error.message, "code": error.status}}, headers)
            return
        dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        data = []
        for index, text in enumerate(inputs):
            vector = hashed_embedding(text, dimensions)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(count_tokens(text) for text in inputs)
        self._json(200, {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _answer(self, request: ScriptedRequest) -> None:
        state = self.server.state
        call = RecordedCall(request=request, received=time.monotonic())
        with state.lock:
            state.calls.append(call)
        try:
            reply = state.script(request)
        except Exception as exc:  # a broken script must fail the call fast, not hang it
            state.script_failures.append(repr(exc))
            reply = ScriptedError(400, f"script raised {exc!r}")
        delay = state.latency(request) if callable(state.latency) else state.latency
        if delay > 0:
            time.sleep(delay)
        # Recorded before replying: a client may look at the log as soon as it has the reply.
        call.answered = time.monotonic()
        if isinstance(reply, ScriptedError):
            call.status = reply.status
            self._json(reply.status, {"error": {"message": reply.message, "type": "scripted_error", "code": reply.status}})
        else:
            reply = reply if isinstance(reply, ScriptedReply) else ScriptedReply(reply)
            call.status = 200
            call.reply = reply.text
            call.usage = usage = _usage(request, reply, state.cached_tokens(request))
            if request.stream:
                self._stream(request, reply.text, usage)
            else:
                self._json(200, _completion(request, reply.text, usage))

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, request: ScriptedRequest, reply: str, usage: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for chunk in _chunks(request, reply, usage):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _usage(request: ScriptedRequest, reply: ScriptedReply, cached: int) -> dict[str, Any]:
    """OpenAI's shape: cached tokens are part of the prompt, reasoning tokens of the completion."""
    prompt = sum(count_tokens(_text_of(m.get("content"))) for m in request.messages)
    completion = count_tokens(reply.text) + reply.reasoning_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
    }


def _completion(request: ScriptedRequest, reply: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }


def _chunks(request: ScriptedRequest, reply: str, usage: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """SSE chunks: role, content pieces, finish reason, then usage when asked for."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": request.model}
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    pieces = re.findall(r"\S*\s*", reply) or [reply]
    for piece in filter(None, pieces):
        yield {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if request.include_usage:
        yield {**base, "choices": [], "usage": usage}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timed-out call) is normal here, not a server fault."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ModelServer:
    """The scripted server, started and stopped as a context manager."""

    def __init__(self, script: Script | str = "ok", *, latency: Latency = 0.0, host: str = "127.0.0.1") -> None:
        self._state = _State(script=_as_script(script), latency=latency)
        self._host = host
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ModelServer:
        self._server = _Server(self._state, self._host)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for an `openai` provider (`{url}/chat/completions`) or an `azure` one."""
        if self._server is None:
            raise RuntimeError("model server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def set_script(self, script: Script | str) -> None:
        self._state.script = _as_script(script)

    def set_latency(self, latency: Latency) -> None:
        self._state.latency = latency

    @property
    def calls(self) -> list[RecordedCall]:
        with self._state.lock:
            return list(self._state.calls)

    @property
    def other_requests(self) -> list[tuple[str, str]]:
        """Requests that were not chat completions (e.g. `GET /models`)."""
        return list(self._state.other_requests)

    def fail_embeddings(self, *errors: ScriptedError, retry_after: float | None = None) -> None:
        """Answer the next embeddings requests with these errors, in order."""
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        with self._state.lock:
            self._state.embedding_errors.extend((error, headers) for error in errors)

    @property
    def embedding_calls(self) -> list[EmbeddingCall]:
        with self._state.lock:
            return list(self._state.embedding_calls)

    @property
    def script_failures(self) -> list[str]:
        return list(self._state.script_failures)

    def max_overlap(self) -> int:
        """The largest number of chat calls in flight at once, from the request log."""
        return peak_in_flight(self.calls)


def peak_in_flight(calls: list[RecordedCall]) -> int:
    """The largest number of the given calls in flight at once (unanswered ones count as open)."""
    edges: list[tuple[float, int]] = []
    for call in calls:
        edges.append((call.received, 1))
        edges.append((call.answered if call.answered is not None else float("inf"), -1))
    running = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def _as_script(script: Script | str) -> Script:
    if isinstance(script, str):
        text = script
        return lambda _: text
    return script
