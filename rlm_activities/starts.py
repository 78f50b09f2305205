"""Starting root queries and batches exactly once, and no more queries than the limit.

A start claims its id in the catalog first (create-if-absent), so of concurrent or
repeated starts under one id exactly one runs: the same body again is told where the
running instance is, another body gets a conflict and changes nothing. A claim whose
start died half way (the process killed between claim and start) is taken over by the
next same-body retry once it is older than START_GRACE.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import azure.durable_functions as df

from shared.admission import Holder, Slot, Slots, Ticket
from shared.catalog import START_GRACE, Catalog, Kind, Outcome

ENDED = ("Completed", "Failed", "Terminated", "Canceled")


def key_id(idempotency_key: str) -> str:
    """The id an Idempotency-Key stands for: the same key, the same instance."""
    return "key-" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


async def exists(client: df.DurableOrchestrationClient, instance_id: str) -> bool:
    status = await client.get_status(instance_id)
    return status is not None and status.runtime_status is not None


async def start_once(
    client: df.DurableOrchestrationClient,
    catalog: Catalog,
    kind: Kind,
    id: str,
    instance_id: str,
    *,
    digest: str,
    fields: dict,
    start: Callable[[], Awaitable[None]],
) -> Outcome:
    """Run `start` unless the id was claimed before; NEW when this call started it."""
    claim = await asyncio.to_thread(catalog.claim, kind, id, digest=digest, fields=fields)
    if claim.outcome is Outcome.CONFLICT:
        return Outcome.CONFLICT
    if claim.outcome is Outcome.SAME:
        if not claim.entry.stale(datetime.now(UTC)) or await exists(client, instance_id):
            return Outcome.SAME
    try:
        await start()
    except BaseException:
        if claim.outcome is Outcome.NEW:
            await asyncio.to_thread(catalog.release, kind, claim.entry)
        raise
    return Outcome.NEW


async def admit(client: df.DurableOrchestrationClient, slots: Slots, instance_id: str) -> Ticket | None:
    """Take a running-query slot for `instance_id`; None when every slot is held by a live query."""
    states = await asyncio.to_thread(slots.read_all)
    ticket = await _take_first(slots, [s for s in states if s.holder is None], instance_id)
    if ticket is not None:
        return ticket
    held = [s for s in states if s.holder is not None]
    alive = await asyncio.gather(*(_running(client, s.holder) for s in held if s.holder is not None))
    return await _take_first(slots, [s for s, live in zip(held, alive, strict=True) if not live], instance_id)


async def _take_first(slots: Slots, candidates: list[Slot], instance_id: str) -> Ticket | None:
    for slot in candidates:
        if (ticket := await asyncio.to_thread(slots.take, slot, instance_id)) is not None:
            return ticket
    return None


async def _running(client: df.DurableOrchestrationClient, holder: Holder) -> bool:
    """Whether the query holding a slot still runs (or is still being started)."""
    status = await client.get_status(holder.instance_id)
    if status is None or status.runtime_status is None:
        return datetime.now(UTC) - holder.taken_at < START_GRACE
    return status.runtime_status.value not in ENDED
