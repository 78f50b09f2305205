"""Cancelling a root query's whole tree: Durable does not cascade a termination, so the
sub-queries are stopped too (or they go on calling the model for an answer nobody will
read), and the tree's sandbox sessions are closed and their files deleted."""

from __future__ import annotations

import asyncio

import azure.durable_functions as df

from rlm_activities import services


async def cancel_tree(client: df.DurableOrchestrationClient, root_id: str, reason: str) -> int:
    """Terminate a running root and every sub-query its trace lists, then close the sandboxes of
    the tree. Returns how many sub-queries there were."""
    await client.terminate(root_id, reason)
    metas = await asyncio.to_thread(services.traces().metas, root_id)
    children = [m.instance_id for m in metas if m.instance_id != root_id]
    await asyncio.gather(*(client.terminate(child, f"query {root_id} was cancelled") for child in children))
    await asyncio.to_thread(services.parts().executor.close_tree, root_id)
    return len(children)
