"""Starting root queries, comparisons and batches exactly once, and no more queries than the limit.

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
from pydantic import BaseModel

from rlm_activities import services
from rlm_activities.http_io import NotFound, busy_error, unpriced_error
from shared.admission import Holder, Slot, Slots, Ticket
from shared.catalog import START_GRACE, Catalog, Kind, Outcome
from shared.corpus import CorpusError
from shared.starting import UnpricedModels

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
    sole_host: bool = False,
) -> Outcome:
    """Run `start` unless the id was claimed before; NEW when this call started it.

    A `sole_host` (the devhost CLI, which holds its state dir alone and starts one instance)
    takes over a same-body claim whose instance is not there at once: nobody else can be
    starting it.
    """
    claim = await asyncio.to_thread(catalog.claim, kind, id, digest=digest, fields=fields)
    if claim.outcome is Outcome.CONFLICT:
        return Outcome.CONFLICT
    if claim.outcome is Outcome.SAME:
        taken_over = sole_host or claim.entry.stale(datetime.now(UTC))
        if not taken_over or await exists(client, instance_id):
            return Outcome.SAME
    try:
        await start()
    except BaseException:
        if claim.outcome is Outcome.NEW:
            await asyncio.to_thread(catalog.release, kind, claim.entry)
        raise
    return Outcome.NEW


async def start_admitted(
    client: df.DurableOrchestrationClient,
    kind: Kind,
    instance_id: str,
    *,
    keyed: bool,
    digest: str,
    fields: dict,
    orchestrator: str,
    build: Callable[[], BaseModel],
) -> Outcome:
    """An HTTP start of a root (a query, a comparison): once per id, holding a running-query slot.

    A `keyed` id (from an Idempotency-Key) that started before with the same body is SAME
    before anything is built; with another body, CONFLICT. `build` makes the input off the
    event loop (it stores the corpus): an unknown corpus id is a 404 ApiError, a cost budget
    over unpriced models a 400; with every slot held by a live query, a 429.
    """
    catalog = Catalog(services.store())
    if keyed and (earlier := await asyncio.to_thread(catalog.get, kind, instance_id)) is not None:
        if earlier.digest != digest:
            return Outcome.CONFLICT
        if await exists(client, instance_id):
            return Outcome.SAME
    try:
        task = await asyncio.to_thread(build)
    except CorpusError as exc:
        raise NotFound(str(exc)) from None
    except UnpricedModels as exc:
        raise unpriced_error(exc) from None
    slots = Slots(services.store(), services.settings().max_running_queries)
    ticket = await admit(client, slots, instance_id)
    if ticket is None:
        raise busy_error(slots.limit)

    async def start() -> None:
        await client.start_new(orchestrator, instance_id, task.model_dump())

    outcome = Outcome.CONFLICT
    try:
        outcome = await start_once(client, catalog, kind, instance_id, instance_id, digest=digest, fields=fields, start=start)
    finally:
        if outcome is not Outcome.NEW:  # a repeat, a conflict or a failed start holds no slot
            await asyncio.to_thread(slots.release, ticket)
    return outcome


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
