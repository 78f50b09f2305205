"""One record per root query, batch, comparison and stored corpus, written once when it starts.

The record under the id is created atomically (`put_if_absent`): of concurrent starts
under one id exactly one goes ahead, and the others learn whether they sent the same
body (a retry, answered with the same links) or another one (a conflict). A copy under
a newest-first key lets listings read the few records they show instead of walking
traces or corpora.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field

from shared.storage.base import BlobNotFound, BlobStore

Kind = Literal["queries", "batches", "comparisons", "corpora"]
# A claim whose start has not shown up after this long was left by a start that died
# half way; a retry of the same body may then start it.
START_GRACE = timedelta(seconds=120)
# Listing keys count down from here in milliseconds, so ascending names are newest first.
_FAR_FUTURE_MS = 10**13
LISTING_CHARS = 300
PARALLEL_READS = 8


class Entry(BaseModel):
    id: str
    created: datetime
    digest: str | None = Field(None, description="sha256 of the body that started it")
    fields: dict[str, Any] = Field(default_factory=dict, description="what listings show")

    def stale(self, now: datetime) -> bool:
        return now - self.created > START_GRACE


class Outcome(StrEnum):
    NEW = "new"
    SAME = "same"
    CONFLICT = "conflict"


class Claim(NamedTuple):
    outcome: Outcome
    entry: Entry


def body_digest(model: BaseModel) -> str:
    """The digest two requests share exactly when they validated to the same body."""
    return hashlib.sha256(model.model_dump_json().encode("utf-8")).hexdigest()


def listing_text(text: str) -> str:
    return text if len(text) <= LISTING_CHARS else text[: LISTING_CHARS - 1] + "\u2026"


class Catalog:
    """Records in the payloads container under `catalog/{kind}/`."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.container = store.containers.payloads

    def claim(self, kind: Kind, id: str, *, digest: str | None, fields: dict[str, Any], now: datetime | None = None) -> Claim:
        entry = Entry(id=id, created=now or datetime.now(UTC), digest=digest, fields=fields)
        data = entry.model_dump_json().encode("utf-8")
        for _ in range(3):  # a claim released between our create and our read: try again
            if self.store.put_if_absent(self.container, _by_id(kind, id), data) is not None:
                self.store.put_bytes(self.container, _by_time(kind, entry), data)
                return Claim(Outcome.NEW, entry)
            existing = self.get(kind, id)
            if existing is not None:
                return Claim(Outcome.SAME if existing.digest == digest else Outcome.CONFLICT, existing)
        raise RuntimeError(f"the {kind} record {id} keeps appearing and disappearing")

    def get(self, kind: Kind, id: str) -> Entry | None:
        try:
            return Entry.model_validate_json(self.store.get_bytes(self.container, _by_id(kind, id)))
        except BlobNotFound:
            return None

    def release(self, kind: Kind, entry: Entry) -> None:
        """Undo a claim whose start failed, so a retry can start afresh."""
        self.store.delete(self.container, _by_time(kind, entry))
        self.store.delete(self.container, _by_id(kind, entry.id))

    def recent(self, kind: Kind, limit: int) -> list[Entry]:
        """The newest `limit` records, newest first (read in parallel: each is a round trip)."""
        keys = self.store.list_keys(self.container, f"catalog/{kind}/recent/", limit=limit)
        with ThreadPoolExecutor(PARALLEL_READS) as pool:
            return [entry for entry in pool.map(self._read, keys) if entry is not None]

    def _read(self, key: str) -> Entry | None:
        try:
            return Entry.model_validate_json(self.store.get_bytes(self.container, key))
        except BlobNotFound:  # released while we listed
            return None


def _by_id(kind: Kind, id: str) -> str:
    return f"catalog/{kind}/ids/{id}.json"


def _by_time(kind: Kind, entry: Entry) -> str:
    millis = int(entry.created.timestamp() * 1000)
    return f"catalog/{kind}/recent/{_FAR_FUTURE_MS - millis:013d}-{entry.id}.json"
