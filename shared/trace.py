"""Per-step trace records: one JSON blob per step under a deterministic key, so a
retried activity overwrites its record instead of adding a second one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from shared.models import CellResult, ForcedReason, QueryResult, TokenUsage
from shared.prompts import Turn, not_run_note
from shared.protocol import truncate_output
from shared.storage.base import BlobNotFound, BlobStore

StepKind = Literal["generate", "execute", "resume", "leaf", "forced", "index", "retrieve", "rewrite", "answer", "judge"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class InstanceMeta(BaseModel):
    """Who an instance is in the recursion tree."""

    instance_id: str
    root_id: str
    parent_id: str | None
    depth: int
    question: str
    corpus_id: str
    context_chars: int
    started_at: datetime
    strategy: str = "rlm"
    model: str | None = None
    requested_model: str | None = None  # what the parent's code asked for with `model=`, if it did


class RetrievedPassage(BaseModel):
    """A passage a retrieval step found, by rank."""

    passage: int
    title: str
    document_id: str | None = None
    score: float


class RetrievalDetail(BaseModel):
    """What a retrieval baseline's step did: the indexes it built or reused, the query it
    ran and what that found."""

    query: str | None = None
    hits: list[RetrievedPassage] = Field(default_factory=list)
    built: list[str] = Field(default_factory=list)
    reused: list[str] = Field(default_factory=list)


class StepRecord(BaseModel):
    instance_id: str
    step: int
    iteration: int
    kind: StepKind
    forced_reason: ForcedReason | None = None  # of a forced step: why no more code ran
    started_at: datetime
    ended_at: datetime = Field(default_factory=utcnow)
    model: str | None = None
    requested_model: str | None = None  # what the code asked for with `model=`, if it did
    prompt: str | None = None
    reply: str | None = None
    blocks: list[str] = Field(default_factory=list)  # the reply's code, block by block
    notes: list[str] = Field(default_factory=list)  # what the model is told about its reply, above the output
    usage: TokenUsage | None = None
    cell: CellResult | None = None
    answers: dict[str, str] = Field(default_factory=dict)
    children: dict[str, str] = Field(default_factory=dict)
    # A leaf step answers one pending request of its parent's cell: which one, so a
    # reader of the trace can tell the siblings of a fan-out apart.
    request_id: str | None = None
    retrieval: RetrievalDetail | None = None
    error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def code(self) -> str | None:
        """The blocks as one script, for readers of the trace."""
        return "\n\n".join(self.blocks) if self.blocks else None


def instance_prefix(root_id: str, instance_id: str) -> str:
    return f"{root_id}/{instance_id}/"


def step_key(root_id: str, instance_id: str, step: int) -> str:
    return f"{instance_prefix(root_id, instance_id)}{step:04d}.json"


class TraceStore:
    """Reads and writes the trace tree of a query in the traces container."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.container = store.containers.traces

    def write_meta(self, root_id: str, meta: InstanceMeta) -> None:
        self.store.put_text(self.container, instance_prefix(root_id, meta.instance_id) + "meta.json", meta.model_dump_json())

    def start_meta(self, root_id: str, meta: InstanceMeta) -> bool:
        """Record an instance's start unless a step already did; True for the one that did."""
        key = instance_prefix(root_id, meta.instance_id) + "meta.json"
        return self.store.put_if_absent(self.container, key, meta.model_dump_json().encode()) is not None

    def write_step(self, root_id: str, record: StepRecord) -> None:
        self.store.put_text(self.container, step_key(root_id, record.instance_id, record.step), record.model_dump_json())

    def write_result(self, root_id: str, result: QueryResult) -> None:
        self.store.put_text(
            self.container, instance_prefix(root_id, result.instance_id) + "result.json", result.model_dump_json()
        )

    def read_step(self, root_id: str, instance_id: str, step: int) -> StepRecord:
        return StepRecord.model_validate_json(self.store.get_bytes(self.container, step_key(root_id, instance_id, step)))

    def steps(self, root_id: str, instance_id: str) -> list[StepRecord]:
        prefix = instance_prefix(root_id, instance_id)
        names = [k[len(prefix) :] for k in self.store.list_keys(self.container, prefix)]
        return self.read_steps(root_id, instance_id, names)

    def files(self, root_id: str) -> dict[str, list[str]]:
        """The record names of each instance of a root's tree, from one listing of the root's
        prefix: reading a tree costs what it holds, however many other trees the store keeps."""
        files: dict[str, list[str]] = {}
        for key in self.store.list_keys(self.container, f"{root_id}/"):
            _, instance_id, name = key.split("/", 2)
            files.setdefault(instance_id, []).append(name)
        return files

    def metas(self, root_id: str) -> list[InstanceMeta]:
        return [self.read_meta(root_id, iid) for iid, names in self.files(root_id).items() if "meta.json" in names]

    def read_meta(self, root_id: str, instance_id: str) -> InstanceMeta:
        return InstanceMeta.model_validate_json(
            self.store.get_bytes(self.container, instance_prefix(root_id, instance_id) + "meta.json")
        )

    def result(self, root_id: str, instance_id: str) -> QueryResult | None:
        try:
            data = self.store.get_bytes(self.container, instance_prefix(root_id, instance_id) + "result.json")
        except BlobNotFound:
            return None
        return QueryResult.model_validate_json(data)

    def read_steps(self, root_id: str, instance_id: str, names: list[str]) -> list[StepRecord]:
        prefix = instance_prefix(root_id, instance_id)
        steps = sorted(n for n in names if n[:4].isdigit())
        return [StepRecord.model_validate_json(self.store.get_bytes(self.container, prefix + n)) for n in steps]


def turns_from_steps(steps: list[StepRecord], truncate_chars: int, spent: ForcedReason | None = None) -> list[Turn]:
    """The model's view of past iterations: each reply, then the notes on it and the cell's last output, cut.

    A cell whose last record is still suspended was left waiting when the budget ran out
    (`spent` says which): the model sees what it printed so far and that its requests were not run.
    """
    turns: dict[int, Turn] = {}
    notes: dict[int, list[str]] = {}
    for record in steps:
        if record.kind == "generate":
            turns[record.iteration] = Turn(reply=record.reply or "", output=None)
            notes[record.iteration] = record.notes
        elif record.kind in ("execute", "resume") and record.cell and record.iteration in turns:
            view = cell_view(record.cell, truncate_chars)
            if record.cell.status == "suspended":
                view = view.rstrip("\n") + "\n" + not_run_note([r.kind for r in record.cell.pending], spent)
            turns[record.iteration] = Turn(turns[record.iteration].reply, "\n".join([*notes[record.iteration], view]))
    return [turns[i] for i in sorted(turns)]


def cell_view(cell: CellResult, truncate_chars: int) -> str:
    """What the model sees of a finished cell: each block's output under its own header, each
    cut to a fair share of `truncate_chars` (a short output is shown whole, long ones share the rest)."""
    outputs = [_block_view(cell, stdout, stderr, error) for stdout, stderr, error in cell.block_outputs()]
    shares = fair_shares([len(text) for text in outputs], truncate_chars)
    if len(outputs) == 1:
        parts = [truncate_output(outputs[0], shares[0])]
    else:
        parts = [
            f"[block {n} of {len(outputs)}]\n{truncate_output(text, share)}"
            for n, (text, share) in enumerate(zip(outputs, shares, strict=True), 1)
        ]
    if cell.status == "timeout":
        parts.append(
            f"[the cell was stopped: {cell.error or 'it ran past its time limit'}; the REPL was restored to its state before this cell]"
        )
    return "\n".join(parts)


def _block_view(cell: CellResult, stdout: str, stderr: str, error: str | None) -> str:
    parts = []
    if stdout:
        parts.append(stdout)
    if stderr:
        parts.append(f"[stderr]\n{stderr}")
    if cell.status == "error" and error and error not in stderr:
        parts.append(f"[error] {error}")
    return "\n".join(parts) if parts else "[no output]"


def fair_shares(lengths: list[int], total: int) -> list[int]:
    """Split `total` characters among texts of these lengths: whatever fits in an equal share
    is kept whole, and what the short ones leave is shared by the long ones."""
    shares = [0] * len(lengths)
    left, remaining = total, len(lengths)
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        shares[index] = min(lengths[index], left // remaining)
        left -= shares[index]
        remaining -= 1
    return shares


class TraceNode(BaseModel):
    """An instance of the recursion tree with its steps and children."""

    meta: InstanceMeta
    result: QueryResult | None
    steps: list[StepRecord]
    children: list[TraceNode] = Field(default_factory=list)


def trace_tree(traces: TraceStore, root_id: str) -> TraceNode | None:
    """The whole tree of a query, rebuilt from the per-instance records: one listing of the root's
    prefix, then each record read once."""
    files = traces.files(root_id)
    if "meta.json" not in files.get(root_id, []):
        return None
    nodes = {
        iid: TraceNode(
            meta=traces.read_meta(root_id, iid),
            result=traces.result(root_id, iid) if "result.json" in names else None,
            steps=traces.read_steps(root_id, iid, names),
        )
        for iid, names in files.items()
        if "meta.json" in names
    }
    for iid in sorted(nodes):
        parent = nodes[iid].meta.parent_id
        if parent in nodes:
            nodes[parent].children.append(nodes[iid])
    return nodes[root_id]
