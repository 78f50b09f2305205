"""The REPL that runs model-written code, injected into the sandbox process.

Standard library only and self-contained: the ACA backend uploads this file's source
into a Dynamic Sessions interpreter where none of our packages exist. A cell runs in a
worker thread; `rlm_query`/`llm_query` never call a model, they register a pending
request and block, and `execute`/`resume` return as soon as the cell is done or every
thread it started is blocked (DESIGN section 4). Locally, child.py serves it over
private pipes; on ACA, small snippets call it and print one reply line (`reply_line`).

The namespace speaks our API and the reference implementation's at once (the README's
"What the REPL understands"): models trained on either write it without being told.
"""

from __future__ import annotations

import ast
import collections
import concurrent.futures._base
import concurrent.futures.thread
import hashlib
import io
import json
import linecache
import mmap
import os
import queue
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

CONTEXT_FILE = "context.txt"
SUB_CONTEXT_PREFIX = "sub-"
SETTLE_SECONDS = 0.02
# A thread whose innermost frame sits in these modules is waiting on a lock, event,
# queue, join or future: it cannot make progress until another thread does.
BLOCKING_FILES = frozenset(
    m.__file__ for m in (threading, queue, concurrent.futures._base, concurrent.futures.thread)
)


def request_key(kind: str, question: str, sub_sha: str | None, model: str | None = None) -> str:
    """Content key of a model request, so recorded answers match whatever thread asks.

    The model joins the key only when code named one, so keys of requests without
    `model=` are the same as before it existed (journals recorded then still replay)."""
    parts = [kind, question, sub_sha] if model is None else [kind, question, sub_sha, model]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=True).encode("utf-8")).hexdigest()


def sub_context_file(sub_sha: str) -> str:
    return f"{SUB_CONTEXT_PREFIX}{sub_sha}.txt"


def sub_context_sha(file_name: str | None) -> str | None:
    """Inverse of `sub_context_file`: sub-context files are content-addressed."""
    if not file_name:
        return None
    return file_name[len(SUB_CONTEXT_PREFIX) : -len(".txt")]


class Capped:
    """Keeps the first `limit` characters and counts the rest, so a chatty cell cannot exhaust memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            room = max(self.limit - self.size, 0)
            kept = text[:room]
            if kept:
                self.parts.append(kept)
                self.size += len(kept)
            self.dropped += len(text) - len(kept)

    def text(self) -> str:
        with self.lock:
            out = "".join(self.parts)
            if self.dropped:
                out += f"\n[output truncated: {self.dropped} more characters not shown]\n"
            return out


class Router(io.TextIOBase):
    """sys.stdout/sys.stderr replacement: sends each write to the sink `pick` chooses for the calling thread."""

    def __init__(self, fallback: Any, pick: Callable[[], Capped | None]) -> None:
        super().__init__()
        self.fallback = fallback
        self.pick = pick

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:  # type: ignore[override]
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        sink = self.pick()
        if sink is not None:
            sink.write(text)
        elif self.fallback is not None:
            self.fallback.write(text)
        return len(text)

    def flush(self) -> None:
        if self.pick() is None and self.fallback is not None:
            self.fallback.flush()


class Cell:
    """One model reply's fenced blocks, run one after another in the REPL's namespace."""

    def __init__(self, cell_id: str, blocks: list[str], recorded: dict[str, collections.deque[str]], limit: int) -> None:
        self.id = cell_id
        self.blocks = blocks
        self.recorded = recorded
        self.out = Capped(limit)
        self.err = Capped(limit)
        self.ends: list[dict[str, Any]] = []  # per finished block: where its output ends, how it ended
        self.in_block = False
        self.counter = 0
        self.baseline: set[int] = set()
        self.finished = False
        self.result: dict[str, Any] | None = None

    def block_end(self, error: str | None) -> dict[str, Any]:
        return {"stdout_end": self.out.size, "stderr_end": self.err.size, "error": error}


class Repl:
    """One persistent REPL namespace, its cells and their pending model requests."""

    def __init__(self, session_dir: str, context_file: str = CONTEXT_FILE, output_max_chars: int = 1_000_000) -> None:
        self.session_dir = session_dir
        self.output_max_chars = output_max_chars
        self.cond = threading.Condition()
        self.events = 0
        self.pending: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, str] = {}
        self.waiting: dict[int, list[str]] = {}
        self.cells: dict[str, Cell] = {}
        self.active: Cell | None = None
        self.host_ident = threading.get_ident()
        self.broken: str | None = None
        context = load_text(os.path.join(session_dir, context_file))
        self.globals: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.globals.update(context=context, context_0=context, Final=None, used_sections=[], answer=new_answer())
        self.globals.update(
            FINAL=self._final,
            FINAL_VAR=self._final_var,
            SHOW_VARS=self._show_vars,
            rlm_query=self._rlm_query,
            llm_query=lambda prompt, model=None: self._ask("llm", [(prompt, None)], model)[0],
            rlm_query_batched=lambda prompts, model=None: self._ask("rlm", [_pair(p) for p in prompts], model),
            llm_query_batched=lambda prompts, model=None: self._ask("llm", [(p, None) for p in prompts], model),
        )
        self.globals.update(rlm_query_batch=self.globals["rlm_query_batched"], llm_query_batch=self.globals["llm_query_batched"])
        self.predefined = dict(self.globals)
        self._install_streams()

    def _install_streams(self) -> None:
        if getattr(getattr(sys.stdout, "pick", None), "__self__", None) is not self:
            sys.stdout = Router(sys.stdout, self._pick_out)
            sys.stderr = Router(sys.stderr, self._pick_err)

    def _sink(self) -> Cell | None:
        if threading.get_ident() == self.host_ident:
            return None
        return self.active

    def _pick_out(self) -> Capped | None:
        cell = self._sink()
        return cell.out if cell else None

    def _pick_err(self) -> Capped | None:
        cell = self._sink()
        return cell.err if cell else None

    def _final(self, value: Any) -> None:
        self.globals["Final"] = answer_content(value)

    def _final_var(self, name: Any) -> None:
        """A variable's name (quoted or not), or the answer itself: a string naming no variable is the answer."""
        key = name.strip().strip("\"'").strip() if isinstance(name, str) else None
        self._final(self.globals[key] if key and key.isidentifier() and key in self.globals else name)

    def _show_vars(self) -> Shown:
        """The variables code created or rebound, with their type and size."""
        made = {
            name: value
            for name, value in self.globals.items()
            if not name.startswith("_") and self.predefined.get(name) is not value and not isinstance(value, types.ModuleType)
        }
        if not made:
            return Shown("No variables created yet. Always there: context (alias context_0), answer, Final, used_sections.")
        return Shown("Variables:\n" + "\n".join(f"  {name}: {describe_value(value)}" for name, value in made.items()))

    def _rlm_query(self, question: Any = None, sub_context: Any = None, model: Any = None, *, prompt: Any = None) -> str:
        """`prompt=` is the reference implementation's name for the question."""
        if question is None and prompt is None:
            raise TypeError("rlm_query() needs a question")
        return self._ask("rlm", [(prompt if question is None else question, sub_context)], model)[0]

    def _ask(self, kind: str, items: list[tuple[Any, Any]], model: Any = None) -> list[str]:
        """Register requests (answered at once when a recorded answer matches) and block until all are answered."""
        cell = self.active
        if cell is None:
            raise RuntimeError("rlm_query/llm_query can only be called while a cell runs")
        model = model_name(model)
        prepared = []
        for question, sub in items:
            text = None if sub is None else str(sub)
            sha = None if text is None else hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            prepared.append((str(question), text, sha))
        ids, to_write = [], []
        with self.cond:
            for question, text, sha in prepared:
                rid = f"{cell.id}.{cell.counter}"
                cell.counter += 1
                fifo = cell.recorded.get(request_key(kind, question, sha, model))
                if fifo:
                    self.answers[rid] = fifo.popleft()
                else:
                    to_write.append((rid, question, text, sha))
                ids.append(rid)
        for _rid, _question, text, sha in to_write:
            if sha is not None:
                path = os.path.join(self.session_dir, sub_context_file(sha))
                if not os.path.exists(path):
                    with open(path, "w", encoding="utf-8", errors="surrogatepass") as handle:
                        handle.write(text)
        me = threading.get_ident()
        with self.cond:
            for rid, question, text, sha in to_write:
                self.pending[rid] = {
                    "id": rid,
                    "kind": kind,
                    "question": question,
                    "sub_context_file": None if sha is None else sub_context_file(sha),
                    "sub_context_chars": 0 if text is None else len(text),
                    "model": model,
                }
            self.waiting[me] = ids
            self._bump()
            while any(rid not in self.answers for rid in ids):
                self.cond.wait()
            del self.waiting[me]
            self._bump()
            return [self.answers.pop(rid) for rid in ids]

    def _bump(self) -> None:
        self.events += 1
        self.cond.notify_all()

    def execute(
        self, cell_id: str, code: str | list[str], answers: list[list[str]] | None = None, timeout: float = 120.0
    ) -> dict[str, Any]:
        """Run a cell: one block of code, or a reply's blocks one after another (an error in one
        is reported for that block and the next still runs). `answers` are recorded
        [content key, answer] pairs for a replay."""
        self.host_ident = threading.get_ident()
        self._install_streams()
        cell = self.cells.get(cell_id)
        if cell is not None:
            if not cell.finished:
                self.active = cell
            return cell.result if cell.finished else self._wait(cell, timeout)  # type: ignore[return-value]
        if self.broken:
            return _failure(cell_id, self.broken)
        recorded: dict[str, collections.deque[str]] = collections.defaultdict(collections.deque)
        for key, answer in answers or []:
            recorded[key].append(str(answer))
        cell = Cell(cell_id, [code] if isinstance(code, str) else list(code), recorded, self.output_max_chars)
        self.cells[cell_id] = cell
        with self.cond:
            self.active = cell
            cell.baseline = {t.ident for t in threading.enumerate() if t.ident is not None}
        threading.Thread(target=self._run, args=(cell,), name=f"cell-{cell_id}", daemon=True).start()
        return self._wait(cell, timeout)

    def resume(self, cell_id: str, answers: dict[str, str], timeout: float = 120.0) -> dict[str, Any]:
        """Deliver answers to pending requests; ids that are not pending (already answered) are ignored."""
        self.host_ident = threading.get_ident()
        self._install_streams()
        cell = self.cells.get(cell_id)
        if cell is None:
            return _failure(cell_id, f"no cell {cell_id!r} in this session")
        if cell.finished:
            return cell.result  # type: ignore[return-value]
        with self.cond:
            self.active = cell
            for rid, answer in answers.items():
                if self.pending.pop(rid, None) is not None:
                    self.answers[rid] = str(answer)
            self._bump()
        return self._wait(cell, timeout)

    def _run(self, cell: Cell) -> None:
        errors: list[str] = []
        memory = False
        for number, code in enumerate(cell.blocks, start=1):
            with self.cond:
                cell.in_block = True
            failure = self._run_block(cell, number, code)
            error = None if failure is None else describe_exception(failure)
            with self.cond:
                cell.ends.append(cell.block_end(error))
                cell.in_block = False
            if error is not None:
                errors.append(error if len(cell.blocks) == 1 else f"block {number}: {error}")
            if isinstance(failure, MemoryError):  # the process is in no state to go on; the executor restarts it
                memory = True
                break
        with self.cond:
            if not cell.finished:
                cell.result = self._snapshot(cell, "error" if errors else "done", errors[-1] if errors else None)
                cell.result["restart"] = memory
                cell.finished = True
            self._bump()

    def _run_block(self, cell: Cell, number: int, code: str) -> BaseException | None:
        """Run one block like a notebook cell (the value of a last bare expression is printed)."""
        name = f"<cell {cell.id}>" if len(cell.blocks) == 1 else f"<cell {cell.id} block {number}>"
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        try:
            tree = ast.parse(code, name)
            echo = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, name, "exec"), self.globals)
            if echo is not None:
                value = eval(compile(ast.Expression(echo.value), name, "eval"), self.globals)
                if value is not None:
                    print(repr(value))
        except BaseException as exc:  # the block's failure is data for the model, whatever it is
            cell.err.write(format_traceback(exc))
            return exc
        return None

    def _wait(self, cell: Cell, timeout: float) -> dict[str, Any]:
        """Block until the cell finishes, settles in a suspension, or runs out of time."""
        deadline = time.monotonic() + timeout
        stable: tuple[int, float] | None = None
        with self.cond:
            while True:
                if cell.finished:
                    return cell.result  # type: ignore[return-value]
                now = time.monotonic()
                if self._quiescent(cell):
                    if stable is None or stable[0] != self.events:
                        stable = (self.events, now)
                    elif now - stable[1] >= SETTLE_SECONDS:
                        return self._snapshot(cell, "suspended", None)
                else:
                    stable = None
                if now >= deadline:
                    self.broken = f"an earlier cell ({cell.id}) timed out; the session must be restarted"
                    cell.result = self._snapshot(cell, "timeout", f"cell exceeded its {timeout:g} s time limit and was stopped")
                    cell.result["restart"] = True
                    cell.finished = True
                    return cell.result
                wait = SETTLE_SECONDS / 2 if self.pending else 0.25
                self.cond.wait(min(wait, max(deadline - now, 0.001)))

    def _quiescent(self, cell: Cell) -> bool:
        """True when a request is pending and every thread the cell started is blocked."""
        if not any(rid.startswith(f"{cell.id}.") for rid in self.pending):
            return False
        frames = sys._current_frames()
        me = threading.get_ident()
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is None or ident in cell.baseline or ident == me or not thread.is_alive():
                continue
            ids = self.waiting.get(ident)
            if ids is not None and any(rid in self.pending for rid in ids):
                continue
            frame = frames.get(ident)
            if ids is None and frame is not None and frame.f_code.co_filename in BLOCKING_FILES:
                continue
            return False
        return True

    def _snapshot(self, cell: Cell, status: str, error: str | None) -> dict[str, Any]:
        final = final_of(self.globals)
        used = self.globals.get("used_sections")
        running = [cell.block_end(None)] if cell.in_block else []
        pending = [p for rid, p in self.pending.items() if rid.startswith(f"{cell.id}.")] if status == "suspended" else []
        return {
            "cell_id": cell.id,
            "status": status,
            "stdout": cell.out.text(),
            "stderr": cell.err.text(),
            "pending": sorted(pending, key=lambda p: int(p["id"].rsplit(".", 1)[1])),
            "final": None if final is None else _safe_str(final),
            "used_sections": [_safe_str(s) for s in used] if isinstance(used, (list, tuple, set)) else [],
            "error": error,
            "restart": False,
            "blocks": cell.ends + running,
        }


def model_name(model: Any) -> str | None:
    """`model=` as code gave it: a name, or None for the default model."""
    if model is None:
        return None
    if not isinstance(model, str):
        raise TypeError(f"model= takes a model name (str), not {type(model).__name__}")
    return model.strip() or None


def new_answer() -> dict[str, Any]:
    """The reference implementation's answer protocol: setting `ready` to True finishes with `content`."""
    return {"content": "", "ready": False}


def answer_content(value: Any) -> Any:
    """`FINAL(answer)` with the answer dict itself means its content."""
    if isinstance(value, dict) and set(value) == {"content", "ready"}:
        return value["content"]
    return value


def final_of(namespace: dict[str, Any]) -> Any:
    """`Final` when set, else the answer dict's content once it is marked ready."""
    final = namespace.get("Final")
    answer = namespace.get("answer")
    if final is not None or not isinstance(answer, dict):
        return final
    try:
        return answer.get("content", "") if answer.get("ready") else None
    except Exception:  # a `ready` with no truth value (an array, say) is not ready
        return None


class Shown(str):
    """Text that shows as itself when a cell's last line echoes it (`SHOW_VARS()` alone on a line)."""

    def __repr__(self) -> str:
        return str(self)


def describe_value(value: Any) -> str:
    kind = type(value).__name__
    try:
        if isinstance(value, (str, bytes, bytearray)):
            return f"{kind}, {len(value):,} {'chars' if isinstance(value, str) else 'bytes'}"
        if isinstance(value, (bool, int, float, complex)) or value is None:
            text = repr(value)
            return f"{kind} = {text}" if len(text) <= 40 else kind
        return f"{kind}, {len(value):,} items"
    except Exception:  # no len(), a broken one, or an int too long to print: the type alone
        return kind


def _pair(item: Any) -> tuple[Any, Any]:
    if isinstance(item, str):
        return item, None
    if isinstance(item, dict):
        return item.get("question", item.get("prompt")), item.get("sub_context")
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    raise TypeError("rlm_query_batched expects questions or (question, sub_context) pairs")


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception as exc:  # a broken __str__ must not lose the whole result
        return f"<unprintable {type(value).__name__}: {exc!r}>"


def describe_exception(exc: BaseException) -> str:
    text = _safe_str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:2000]


def format_traceback(exc: BaseException) -> str:
    """The user's frames only: the first frame is this module's exec call."""
    try:
        if isinstance(exc, SyntaxError):
            return "".join(traceback.format_exception_only(type(exc), exc))
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except MemoryError:
        return f"{type(exc).__name__}\n"


def _failure(cell_id: str, message: str) -> dict[str, Any]:
    return {
        "cell_id": cell_id, "status": "error", "stdout": "", "stderr": message + "\n", "pending": [],
        "final": None, "used_sections": [], "error": message, "restart": False,
    }


def load_text(path: str) -> str:
    """Decode straight from a read-only mapping: a 100 MB corpus costs one copy (the str), not two."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return ""
        try:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return str(mapped, "utf-8")
        except (OSError, ValueError):
            return handle.read().decode("utf-8")


def reply_line(reply: dict[str, Any], session_dir: str, file_name: str, inline_chars: int) -> str:
    """One short stdout line for the ACA backend: `J` + the JSON, or `F` + a file holding it when stdout would cut it."""
    text = json.dumps(reply)
    if len(text) <= inline_chars:
        return "J" + text
    with open(os.path.join(session_dir, file_name), "w", encoding="utf-8") as handle:
        handle.write(text)
    return "F" + file_name
