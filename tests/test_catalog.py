"""The records behind exactly-once starts, listings and the running-query limit, on the
filesystem store and on Blob Storage (Azurite), raced from many threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from shared.admission import Slots
from shared.catalog import START_GRACE, Catalog, Entry, Outcome
from shared.storage import BlobStore

T = TypeVar("T")


def race(count: int, attempt: Callable[[int], T]) -> list[T]:
    """`attempt(n)` from `count` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(n: int) -> T:
        barrier.wait()
        return attempt(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_a_claim_is_new_once_then_same_or_conflict(store: BlobStore) -> None:
    catalog = Catalog(store)
    first = catalog.claim("batches", "b-1", digest="d1", fields={"questions": 2})
    again = catalog.claim("batches", "b-1", digest="d1", fields={"questions": 2})
    other = catalog.claim("batches", "b-1", digest="d2", fields={"questions": 9})
    assert [first.outcome, again.outcome, other.outcome] == [Outcome.NEW, Outcome.SAME, Outcome.CONFLICT]
    assert again.entry == first.entry == other.entry
    assert catalog.get("batches", "b-1") == first.entry and catalog.get("queries", "b-1") is None


def test_of_twenty_concurrent_claims_exactly_one_is_new(store: BlobStore) -> None:
    catalog = Catalog(store)
    digests = ["same" if n % 2 else "other" for n in range(20)]
    claims = race(20, lambda n: catalog.claim("batches", "raced", digest=digests[n], fields={"n": n}))
    winners = [n for n, c in enumerate(claims) if c.outcome is Outcome.NEW]
    assert len(winners) == 1
    winner = claims[winners[0]].entry
    assert winner.fields == {"n": winners[0]} and all(c.entry == winner for c in claims)
    for n, claim in enumerate(claims):
        if n != winners[0]:
            assert claim.outcome is (Outcome.SAME if digests[n] == winner.digest else Outcome.CONFLICT)
    assert [e.id for e in catalog.recent("batches", 10)] == ["raced"]


def test_recent_lists_newest_first_within_the_limit(store: BlobStore) -> None:
    catalog = Catalog(store)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(5):
        catalog.claim("queries", f"query-{n}", digest=None, fields={}, now=start + timedelta(minutes=n))
    assert [e.id for e in catalog.recent("queries", 3)] == ["query-4", "query-3", "query-2"]
    assert catalog.recent("corpora", 3) == []


def test_a_released_claim_can_be_made_again(store: BlobStore) -> None:
    catalog = Catalog(store)
    first = catalog.claim("queries", "query-x", digest="a", fields={})
    catalog.release("queries", first.entry)
    assert catalog.get("queries", "query-x") is None and catalog.recent("queries", 5) == []
    assert catalog.claim("queries", "query-x", digest="b", fields={}).outcome is Outcome.NEW


def test_a_claim_is_stale_after_the_grace_period() -> None:
    made = datetime(2026, 1, 1, tzinfo=UTC)
    entry = Entry(id="x", created=made)
    assert not entry.stale(made + START_GRACE) and entry.stale(made + START_GRACE + timedelta(seconds=1))


def test_slots_hold_at_most_the_limit_under_a_race(store: BlobStore) -> None:
    slots = Slots(store, 3)

    def take_any(n: int) -> bool:
        free = (slot for slot in map(slots.read, range(3)) if slot.holder is None)
        return any(slots.take(slot, f"query-{n}") for slot in free)

    won = race(12, take_any)
    assert won.count(True) == 3
    holders = {slots.read(k).holder.instance_id for k in range(3)}  # type: ignore[union-attr]
    assert holders == {f"query-{n}" for n, ok in enumerate(won) if ok}


def test_a_slot_read_before_it_changed_cannot_be_taken(store: BlobStore) -> None:
    slots = Slots(store, 1)
    empty = slots.read(0)
    assert slots.take(empty, "query-a") is not None
    assert slots.take(empty, "query-b") is None
    held = slots.read(0)
    assert held.holder is not None and held.holder.instance_id == "query-a"
    takeovers = race(6, lambda n: slots.take(held, f"query-{n}"))
    assert sum(t is not None for t in takeovers) == 1


def test_a_released_slot_is_free_and_a_stale_release_changes_nothing(store: BlobStore) -> None:
    slots = Slots(store, 1)
    ticket = slots.take(slots.read(0), "query-a")
    assert ticket is not None
    slots.release(ticket)
    free = slots.read(0)
    assert free.holder is None
    second = slots.take(free, "query-b")
    assert second is not None
    slots.release(ticket)  # query-a's ticket is stale now
    holder = slots.read(0).holder
    assert holder is not None and holder.instance_id == "query-b"
