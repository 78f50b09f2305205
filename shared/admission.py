"""At most N root queries running at once: N slot records, each naming the query holding it.

A start takes an empty slot with create-if-absent, or a free or ended query's slot with
compare-and-swap on the version it read, so two starts never take one slot and the limit
holds across threads, processes and hosts sharing the store. A start that does not go
ahead (a repeat, a conflict, a failure) gives its slot back; a query that ends does not
need to: the next start that finds its holder ended takes the slot over. Whether a
holder has ended is the Durable layer's to say; this module only keeps the records.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ValidationError

from shared.catalog import PARALLEL_READS
from shared.storage.base import BlobStore

FREE = b"{}"


class Holder(BaseModel):
    instance_id: str
    taken_at: datetime


@dataclass(frozen=True)
class Slot:
    index: int
    holder: Holder | None  # None: free
    version: str | None  # None: the slot record does not exist yet


@dataclass(frozen=True)
class Ticket:
    """A slot this start holds, at the version it wrote."""

    index: int
    version: str


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
            holder = None if found.data == FREE else Holder.model_validate_json(found.data)
        except ValidationError:  # unreadable: free, though taking it still needs its version
            holder = None
        return Slot(index, holder, found.version)

    def read_all(self) -> list[Slot]:
        with ThreadPoolExecutor(PARALLEL_READS) as pool:
            return list(pool.map(self.read, range(self.limit)))

    def take(self, slot: Slot, instance_id: str, now: datetime | None = None) -> Ticket | None:
        """Hold `slot` for `instance_id` if nobody changed it since it was read."""
        data = Holder(instance_id=instance_id, taken_at=now or datetime.now(UTC)).model_dump_json().encode("utf-8")
        if slot.version is None:
            version = self.store.put_if_absent(self.container, _key(slot.index), data)
        else:
            version = self.store.replace_if(self.container, _key(slot.index), data, slot.version)
        return None if version is None else Ticket(slot.index, version)

    def release(self, ticket: Ticket) -> None:
        """Give a slot back; a no-op if it was taken over meanwhile."""
        self.store.replace_if(self.container, _key(ticket.index), FREE, ticket.version)


def _key(index: int) -> str:
    return f"running-queries/slot-{index:05d}.json"
