"""What the Durable activities call: sessions that survive at-least-once delivery and lost sandboxes.

Every session has a journal in the store (`payloads/sessions/{id}/journal.json`): its
corpus, and per cell the code, the answers delivered (by content key) and the last
result. A repeated operation is answered from the journal; a sandbox that is gone
(killed process, restarted host, expired ACA session) is rebuilt by replaying the
journal, so rebuilding is an ordinary path, not a recovery special case.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from shared.config import Settings
from shared.models import CellResult, PendingRequest
from shared.sandbox.base import CellLimits, SandboxBackend, SandboxError, SessionLost
from shared.sandbox.runtime import request_key, sub_context_sha
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
    cells: list[CellRecord] = Field(default_factory=list)

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

    def __init__(self, backend: SandboxBackend, store: BlobStore, limits: CellLimits) -> None:
        self.backend = backend
        self.store = store
        self.limits = limits
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, session_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(session_id, threading.Lock())

    def _key(self, session_id: str) -> str:
        return f"sessions/{session_id}/journal.json"

    def _load(self, session_id: str) -> Journal:
        try:
            text = self.store.get_text(self.store.containers.payloads, self._key(session_id))
        except BlobNotFound:
            raise SandboxError(f"session {session_id} was never opened") from None
        return Journal.model_validate_json(text)

    def _save(self, journal: Journal) -> None:
        self.store.put_text(self.store.containers.payloads, self._key(journal.session_id), journal.model_dump_json())

    def open(self, session_id: str, corpus_id: str) -> None:
        """Start a session over a stored corpus; opening it again is a no-op (a lost sandbox is rebuilt lazily)."""
        with self._lock(session_id):
            try:
                journal = self._load(session_id)
            except SandboxError:
                journal = None
            if journal is not None:
                if journal.corpus_id != corpus_id:
                    raise ValueError(f"session {session_id} is open over corpus {journal.corpus_id}, not {corpus_id}")
                return
            self.backend.start(session_id, self.store.local_path(self.store.containers.corpora, corpus_id))
            self._save(Journal(session_id=session_id, corpus_id=corpus_id))

    def execute(self, session_id: str, cell_id: str, code: str | list[str]) -> CellResult:
        with self._lock(session_id):
            journal = self._load(session_id)
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
            journal = self._load(session_id)
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
                self._rebuild(self._load(session_id), None)
                return self.backend.read_file(session_id, file_name)

    def close(self, session_id: str) -> None:
        """End the sandbox. The journal stays, so a late retry still gets its recorded answer."""
        with self._lock(session_id):
            self.backend.stop(session_id)

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
        path = self.store.local_path(self.store.containers.corpora, journal.corpus_id)
        try:
            self.backend.start(session_id, path)
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
        return result


def make_executor(settings: Settings, store: BlobStore) -> SandboxExecutor:
    """ACA Dynamic Sessions when SESSION_POOL_ENDPOINT is set, else the local sandbox."""
    limits = CellLimits.from_settings(settings)
    if settings.session_pool_endpoint:
        from shared.sandbox.aca import ACABackend

        backend: SandboxBackend = ACABackend(settings.session_pool_endpoint, limits, api_version=settings.session_pool_api_version)
    else:
        from shared.sandbox.local import LocalBackend

        backend = LocalBackend(limits)
    return SandboxExecutor(backend, store, limits)
