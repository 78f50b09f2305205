"""Stopping a query's whole tree. Durable does not cascade a termination, so the sub-queries
are stopped too (or they go on calling the model for an answer nobody will read), and the
tree's sandbox sessions are closed and their files deleted.

Two ways lead here: the cancel routes, which the links of a 202 name as `terminatePostUri`;
and a root (or the comparison or batch a tree runs for) terminated behind the service's
back, by Durable's own webhook. Nothing of ours runs on that termination, so each step of a
tree asks whether its tree still runs, beside its work and after it, and the first step
that finds it stopped stops the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from rlm_activities import services
from rlm_activities.http_io import BadRequest
from rlm_activities.starts import ENDED
from shared.step_models import RlmTask

# Long enough to say why, short enough that any reason, percent-encoded (12 bytes for a 4-byte
# character), fits in the 4 KB of URL a host reads.
REASON_CHARS = 300

log = logging.getLogger("rlm.cancel")


class TreeStopped(RuntimeError):
    """A step of a tree whose root (or owner) no longer runs: it was not run."""


async def cancel_tree(client: df.DurableOrchestrationClient, root_id: str, reason: str, *, also: Iterable[str] = ()) -> int:
    """Terminate a root and every sub-query its trace lists (and `also` those instances, which
    may not be listed yet), then close the sandboxes of the tree. Returns how many sub-queries
    there were. Instances that already ended are left as they are."""
    await client.terminate(root_id, reason)
    metas = await asyncio.to_thread(services.traces().metas, root_id)
    children = {m.instance_id for m in metas if m.instance_id != root_id}
    others = set(also) - children - {root_id}
    stopping = f"query {root_id} was cancelled"
    await asyncio.gather(*(client.terminate(child, stopping) for child in children | others))
    await asyncio.to_thread(services.parts().executor.close_tree, root_id)
    return len(children)


async def why_stopped(client: df.DurableOrchestrationClient, task: RlmTask) -> str | None:
    """Why the tree of `task` should do no more work: its root, or the run that owns it, has
    ended. A check that cannot be made (the host briefly unreachable) lets the step run."""
    watched = [task.root_id] + ([task.owner_id] if task.owner_id else [])
    try:
        statuses = await asyncio.gather(*(client.get_status(instance_id) for instance_id in watched))
    except Exception as exc:  # noqa: BLE001 - a liveness check must not fail the step it guards
        log.warning("could not check whether tree %s still runs: %s", task.root_id, exc)
        return None
    for instance_id, status in zip(watched, statuses, strict=True):
        state = status.runtime_status.value if status is not None and status.runtime_status is not None else None
        if state in ENDED:
            return f"{instance_id} is {state}"
    return None


async def stop_if_ended(client: df.DurableOrchestrationClient, task: RlmTask, instance_id: str) -> str | None:
    """Stop the tree of `task` if its root or owner has ended; the reason, when it did."""
    reason = await why_stopped(client, task)
    if reason is not None:
        log.info("stopping tree %s from %s: %s", task.root_id, instance_id, reason)
        try:
            await cancel_tree(client, task.root_id, reason, also=[instance_id])
        except Exception as exc:  # noqa: BLE001 - e.g. the host stopping meanwhile; the next step or the idle reaper finishes it
            log.warning("could not stop tree %s from %s: %s", task.root_id, instance_id, exc)
    return reason


def cancel_link(req: func.HttpRequest, links: dict[str, str], cancel_path: str) -> dict[str, str]:
    """The management links with `terminatePostUri` pointing at the cancel route, which stops
    the whole tree, where Durable's stops the one instance. It keeps `{text}` as the reason."""
    url = urlsplit(req.url)
    return links | {"terminatePostUri": f"{url.scheme}://{url.netloc}/api/{cancel_path}?reason={{text}}"}


def cancel_reason(req: func.HttpRequest) -> str:
    """The termination reason a cancel names (`?reason=`, as Durable's terminate takes it)."""
    reason = req.params.get("reason") or "cancelled by the user"
    if len(reason) > REASON_CHARS:
        raise BadRequest("reason is too long", [{"field": "reason", "problem": f"at most {REASON_CHARS} characters"}])
    return reason
