"""At most N root queries running at once: N slot records, each naming the query holding it.

A start takes an empty slot with create-if-absent, or the slot of a query that has ended
with compare-and-swap on the version it read, so two starts never take one slot and the
limit holds across threads, processes and hosts sharing the store. Nothing releases a
slot: the next start that finds its holder ended takes it over. Whether a holder has
ended is the Durable layer's to say; this module only keeps the records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ValidationError

from shared.storage.base import BlobStore


class Holder(BaseModel):
    instance_id: str
    taken_at: datetime


@dataclass(frozen=True)
class Slot:
    index: int
    holder: Holder | None
    version: str | None  # None: the slot record does not exist yet


class Slots:
    def __init__(self, store: BlobStore, limit: int) -> None:
        self.store = store
        self.container = store.containers.payloads
        self.limit = limit

    def read(self, index: int) -> Slot:
        found = self.store.read_versioned(self.container, _key(index))
        if found is None:
            return Slot(index, None, None)
        try:
            holder = Holder.model_validate_json(found.data)
        except ValidationError:  # unreadable: treat as free, the swap still needs its version
            holder = None
        return Slot(index, holder, found.version)

    def take(self, slot: Slot, instance_id: str, now: datetime | None = None) -> bool:
        """Hold `slot` for `instance_id` if nobody changed it since it was read."""
        data = Holder(instance_id=instance_id, taken_at=now or datetime.now(UTC)).model_dump_json().encode("utf-8")
        if slot.version is None:
            return self.store.put_if_absent(self.container, _key(slot.index), data)
        return self.store.replace_if(self.container, _key(slot.index), data, slot.version)


def _key(index: int) -> str:
    return f"running-queries/slot-{index:05d}.json"
