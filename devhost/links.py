"""The URLs the extension hands out: management links and the durableClient binding.

Management links point at the public webhook path and carry the system key (`code=`),
as in Azure; the binding's `rpcBaseUrl` points at the host's loopback-only RPC
listener, which needs no key, as the extension's local RPC endpoint.
"""
from __future__ import annotations

import json
from urllib.parse import quote

WEBHOOK_PATH = "/runtime/webhooks/durabletask/"
RPC_PATH = "/durabletask/"
INSTANCE_PLACEHOLDER = "INSTANCEID"
CONNECTION = "Storage"


def _query(hub: str, system_key: str) -> str:
    return f"taskHub={quote(hub, safe='')}&connection={CONNECTION}&code={quote(system_key, safe='')}"


def management_urls(origin: str, instance_id: str, hub: str, system_key: str) -> dict[str, str]:
    """The Durable management links for one instance, as the extension formats them."""
    base = f"{origin}{WEBHOOK_PATH}instances/{quote(instance_id, safe='')}"
    query = _query(hub, system_key)
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{base}?{query}",
        "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{base}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{base}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{base}?{query}",
        "restartPostUri": f"{base}/restart?{query}",
        "suspendPostUri": f"{base}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{base}/resume?reason={{text}}&{query}",
    }


def client_binding(rpc_origin: str, public_origin: str, hub: str, system_key: str) -> str:
    """The durableClient binding JSON a function receives."""
    create = f"{public_origin}{WEBHOOK_PATH}orchestrators/{{functionName}}[/{{instanceId}}]"
    query = _query(hub, system_key)
    return json.dumps({
        "taskHubName": hub,
        "creationUrls": {
            "createNewInstancePostUri": f"{create}?{query}",
            "createAndWaitOnNewInstancePostUri":
                f"{create}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{query}",
        },
        "managementUrls": management_urls(public_origin, INSTANCE_PLACEHOLDER, hub, system_key),
        "rpcBaseUrl": f"{rpc_origin}{RPC_PATH}",
    })
