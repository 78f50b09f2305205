"""What the Durable activities call: sessions that survive at-least-once delivery and lost sandboxes.

Every session has a journal in the store (`payloads/sessions/{id}/journal.json`): its
corpus, its query tree, and per cell the code, the answers delivered (by content key)
and the last result. A repeated operation is answered from the journal; a sandbox that
is gone (killed process, restarted host, expired ACA session) is rebuilt by replaying
the journal, so rebuilding is an ordinary path, not a recovery special case.

A live sandbox holds a slot (shared.sandbox.slots) until it is closed, or until it has
been idle for `idle_seconds` (then it gives up its slot, and a local sandbox its process,
and is rebuilt by replay if it is used again: a session nobody closes, because its query
was terminated behind our back, cannot pin a slot forever). A tree (a root query and its sub-queries)
is closed as a whole when the root finishes or is cancelled: every session's sandbox
ends, and its files and journal go.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from shared.config import Settings
from shared.models import CellResult, PendingRequest
from shared.sandbox.base import CellLimits, SandboxBackend, SandboxError, SessionLost
from shared.sandbox.runtime import request_key, sub_context_sha
from shared.sandbox.slots import SandboxSlots
from shared.storage.base import BlobNotFound, BlobStore

SUB_CONTEXT_NAME = re.compile(r"^sub-[0-9a-f]{64}\.txt$")
RESTORED_NOTE = "The sandbox was restarted: variables are as they were before this cell ran."


class CellRecord(BaseModel):
    """Enough about one cell to answer a retry and to replay it exactly."""

    cell_id: str
    code: str | list[str]  # one block, or a reply's blocks run in order
    answers: list[tuple[str, str]] = Field(default_factory=list)  # (content key, answer), in delivery order
    delivered: list[tuple[str, str]] = Field(default_factory=list)  # (request id, content key) already answered
    requests: dict[str, str] = Field(default_factory=dict)  # request id -> content key, as last reported
    replay: bool = True  # False for cells that timed out, blew the memory cap or killed the sandbox
    result: CellResult | None = None


class Journal(BaseModel):
    session_id: str
    corpus_id: str
    tree_id: str = ""  # the root query's instance id ("" in journals written before trees: the session itself)
    height: int = 0  # levels of sessions that may still open below this one
    cells: list[CellRecord] = Field(default_factory=list)

    @property
    def tree(self) -> str:
        return self.tree_id or self.session_id

    def cell(self, cell_id: str) -> CellRecord | None:
        return next((c for c in self.cells if c.cell_id == cell_id), None)


def pending_key(request: PendingRequest) -> str:
    return request_key(request.kind, request.question, sub_context_sha(request.sub_context_file), request.model)


def to_cell_result(raw: dict[str, Any]) -> CellResult:
    """The runtime's raw dict minus its internal fields."""
    fields = {k: v for k, v in raw.items() if k in CellResult.model_fields}
    fields["pending"] = [PendingRequest(**{k: v for k, v in p.items() if k in PendingRequest.model_fields}) for p in raw["pending"]]
    return CellResult(**fields)


class SandboxExecutor:
    """Backend-agnostic sessions: idempotent operations, rebuild by replay, one operation at a time per session."""

    def __init__(
        self, backend: SandboxBackend, store: BlobStore, limits: CellLimits, max_live: int | None = None, idle_seconds: float = 600.0
    ) -> None:
        self.backend = backend
        self.store = store
        self.limits = limits
        self.slots = SandboxSlots(max_live)
        self.idle_seconds = idle_seconds
        self._locks: dict[str, threading.Lock] = {}
        self._trees: dict[str, str] = {}  # session id -> tree id, for sessions started in this process
        self._used: dict[str, float] = {}  # live session id -> monotonic time of its last operation
        self._stopped: set[str] = set()  # sessions closed here whose tree is still open
        self._guard = threading.Lock()
        _start_reaper(self)

    def _lock(self, session_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(session_id, threading.Lock())

    def _key(self, session_id: str) -> str:
        return f"sessions/{session_id}/journal.json"

    def _load(self, session_id: str) -> Journal:
        try:
            text = self.store.get_text(self.store.containers.payloads, self._key(session_id))
        except BlobNotFound:
            raise SandboxError(f"session {session_id} was never opened, or its query has ended") from None
        return Journal.model_validate_json(text)

    def _journal(self, session_id: str) -> Journal:
        """The journal of a session an operation is for; if it is gone (its query ended), the slot
        the operation reserved is given back."""
        try:
            return self._load(session_id)
        except SandboxError:
            self.slots.release(session_id)
            raise

    def _save(self, journal: Journal) -> None:
        self.store.put_text(self.store.containers.payloads, self._key(journal.session_id), journal.model_dump_json())

    async def reserve(self, session_id: str, tree_id: str, height: int) -> None:
        """Wait for this session's slot (at once if it holds one). Activities call this before
        anything that may start a sandbox, so the wait holds no thread."""
        await self.slots.acquire(session_id, tree_id, height)
        self._touch(session_id)

    def _touch(self, session_id: str) -> None:
        with self._guard:
            self._used[session_id] = time.monotonic()

    def open(self, session_id: str, corpus_id: str, tree_id: str | None = None, height: int = 0) -> None:
        """Start a session over a stored corpus; opening it again is a no-op (a lost sandbox is rebuilt lazily)."""
        tree = tree_id or session_id
        with self._lock(session_id):
            try:
                journal = self._load(session_id)
            except SandboxError:
                journal = None
            if journal is not None:
                if journal.corpus_id != corpus_id:
                    raise ValueError(f"session {session_id} is open over corpus {journal.corpus_id}, not {corpus_id}")
                return
            journal = Journal(session_id=session_id, corpus_id=corpus_id, tree_id=tree, height=height)
            self._start(journal)
            self._save(journal)

    def _start(self, journal: Journal) -> None:
        """A fresh sandbox for the session, under its slot."""
        session_id = journal.session_id
        with self._guard:
            self._trees[session_id] = journal.tree
            self._stopped.discard(session_id)
        self.slots.acquire_blocking(session_id, journal.tree, journal.height)
        self._touch(session_id)
        self.backend.start(session_id, self.store.local_path(self.store.containers.corpora, journal.corpus_id))

    def execute(self, session_id: str, cell_id: str, code: str | list[str]) -> CellResult:
        with self._lock(session_id):
            journal = self._journal(session_id)
            record = journal.cell(cell_id)
            if record is not None and record.result is not None:
                return record.result
            if record is None:
                record = CellRecord(cell_id=cell_id, code=code)
                journal.cells.append(record)
            raw = self._run(journal, record, lambda: self.backend.execute(session_id, cell_id, record.code, []))
            return self._record(journal, record, raw)

    def resume(self, session_id: str, cell_id: str, answers: dict[str, str]) -> CellResult:
        """Deliver answers to a suspended cell; answers already delivered (a retried activity) are skipped."""
        with self._lock(session_id):
            journal = self._journal(session_id)
            record = journal.cell(cell_id)
            if record is None or record.result is None:
                raise SandboxError(f"cell {cell_id} of session {session_id} was never executed")
            if record.result.status != "suspended":
                return record.result
            fresh = {
                rid: str(answer)
                for rid, answer in answers.items()
                if rid in record.requests and (rid, record.requests[rid]) not in record.delivered
            }
            if not fresh:
                return record.result
            for rid, answer in fresh.items():
                record.answers.append((record.requests[rid], answer))
                record.delivered.append((rid, record.requests[rid]))
            raw = self._run(journal, record, lambda: self.backend.resume(session_id, cell_id, fresh))
            return self._record(journal, record, raw)

    def read_sub_context(self, session_id: str, file_name: str) -> str:
        if not SUB_CONTEXT_NAME.match(file_name):
            raise ValueError(f"not a sub-context file name: {file_name!r}")
        with self._lock(session_id):
            try:
                return self.backend.read_file(session_id, file_name)
            except (SessionLost, FileNotFoundError):
                self._rebuild(self._journal(session_id), None)
                return self.backend.read_file(session_id, file_name)

    def close(self, session_id: str) -> None:
        """End the sandbox and free its slot. The journal stays until the tree closes, so a
        late retry still gets its recorded answer."""
        self._end(session_id, forget=False)

    def close_tree(self, tree_id: str) -> list[str]:
        """End every session of a query tree, delete their files and journals, free their slots,
        and turn away its sessions still waiting for one. Returns the sessions closed."""
        self.slots.cancel_tree(tree_id, SandboxError(f"query {tree_id} has ended: its sandboxes are closed"))
        with self._guard:
            known = {s for s, t in self._trees.items() if t == tree_id}
        sessions = known | self._stored_sessions(tree_id, known)
        for session_id in sorted(sessions):
            self._end(session_id, forget=True)
        return sorted(sessions)

    def _stored_sessions(self, tree_id: str, known: set[str]) -> set[str]:
        """Sessions of the tree with a journal: ids are the root's, or derived from it (`{parent}-{i}-{k}`)."""
        found = set()
        for key in self.store.list_keys(self.store.containers.payloads, f"sessions/{tree_id}"):
            parts = key.split("/")
            if len(parts) != 3 or parts[2] != "journal.json":
                continue
            session_id = parts[1]
            if session_id in known or (session_id != tree_id and not session_id.startswith(f"{tree_id}-")):
                continue
            try:
                if self._load(session_id).tree == tree_id:
                    found.add(session_id)
            except (SandboxError, ValueError):
                continue
        return found

    def _end(self, session_id: str, forget: bool) -> None:
        """Stop the sandbox at once, even mid-cell (the running operation then sees it lost),
        then again under the session lock, in case an operation started one meanwhile."""
        lock = self._lock(session_id)
        if not lock.acquire(blocking=False):
            self.backend.stop(session_id)
            lock.acquire()
        try:
            if session_id not in self._stopped:  # a sub-query closed at its finish needs no second stop
                self.backend.stop(session_id)
            if forget:
                self.store.delete(self.store.containers.payloads, self._key(session_id))
            with self._guard:
                self._used.pop(session_id, None)
                if forget:
                    self._trees.pop(session_id, None)
                    self._locks.pop(session_id, None)
                    self._stopped.discard(session_id)
                else:
                    self._stopped.add(session_id)
        finally:
            lock.release()
            self.slots.release(session_id)

    def reap_idle(self) -> list[str]:
        """Park the sessions idle here for more than `idle_seconds` (a local sandbox stops) and
        free their slots; the journals stay, so a later operation rebuilds by replay. Returns
        the sessions parked."""
        deadline = time.monotonic() - self.idle_seconds
        with self._guard:
            idle = [s for s, used in self._used.items() if used < deadline]
        stopped = []
        for session_id in idle:
            lock = self._lock(session_id)
            if not lock.acquire(blocking=False):
                continue  # an operation is running: not idle
            try:
                with self._guard:
                    if self._used.get(session_id, deadline + 1) >= deadline:
                        continue
                    self._used.pop(session_id)
                self.backend.park(session_id)
                stopped.append(session_id)
            finally:
                lock.release()
            self.slots.release(session_id)
        return stopped

    def _run(self, journal: Journal, record: CellRecord, operation: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run `operation`; if the sandbox is gone, rebuild it and replay this cell with every answer known."""
        session_id = journal.session_id
        try:
            return operation()
        except SessionLost:
            self._rebuild(journal, record)
        try:
            return self.backend.execute(session_id, record.cell_id, record.code, [list(a) for a in record.answers])
        except SessionLost as exc:
            self.backend.stop(session_id)
            message = f"the sandbox process died while running this cell ({exc})"
            return {
                "cell_id": record.cell_id, "status": "error", "stdout": "", "stderr": message + "\n", "pending": [],
                "final": None, "used_sections": [], "error": message, "restart": True,
            }  # fmt: skip

    def _rebuild(self, journal: Journal, upto: CellRecord | None) -> None:
        """A fresh sandbox with the corpus loaded and every replayable cell before `upto` re-run."""
        session_id = journal.session_id
        try:
            self._start(journal)
            for cell in journal.cells:
                if cell is upto:
                    break
                if not cell.replay or cell.result is None:
                    continue
                raw = self.backend.execute(session_id, cell.cell_id, cell.code, [list(a) for a in cell.answers])
                if raw.get("restart"):
                    self.backend.stop(session_id)
                    raise SandboxError(f"replaying cell {cell.cell_id} of session {session_id} ended with {raw['status']}")
        except SessionLost as exc:
            raise SandboxError(f"could not rebuild session {session_id}: {exc}") from exc

    def _record(self, journal: Journal, record: CellRecord, raw: dict[str, Any]) -> CellResult:
        result = to_cell_result(raw)
        if result.status == "suspended":
            record.requests.update({p.id: pending_key(p) for p in result.pending})
        if raw.get("restart"):
            record.replay = False
            self.backend.stop(journal.session_id)
            result.stderr = f"{result.stderr}{RESTORED_NOTE}\n"
            result.error = f"{result.error or result.status}. {RESTORED_NOTE}"
        record.result = result
        self._save(journal)
        self._touch(journal.session_id)
        return result


def make_executor(settings: Settings, store: BlobStore) -> SandboxExecutor:
    """ACA Dynamic Sessions when SESSION_POOL_ENDPOINT is set, else the local sandbox."""
    limits = CellLimits.from_settings(settings)
    if settings.session_pool_endpoint:
        from shared.sandbox.aca import ACABackend

        backend: SandboxBackend = ACABackend(settings.session_pool_endpoint, limits, api_version=settings.session_pool_api_version)
    else:
        from shared.sandbox.local import LocalBackend

        backend = LocalBackend(limits, allow_weak=settings.sandbox_weak_isolation)
    return SandboxExecutor(backend, store, limits, settings.max_live_sandboxes, settings.sandbox_idle_seconds)


def _start_reaper(executor: SandboxExecutor) -> None:
    """A daemon thread that reaps the executor's idle sandboxes, and ends with the executor."""
    ref = weakref.ref(executor)
    period = min(60.0, max(executor.idle_seconds / 4, 0.05))

    def loop() -> None:
        while True:
            time.sleep(period)
            live = ref()
            if live is None:
                return
            live.reap_idle()
            del live

    threading.Thread(target=loop, name="sandbox-reaper", daemon=True).start()
