"""Invoking HTTP- and queue-triggered functions with the bindings the host supplies."""
from __future__ import annotations

import json
import threading
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import azure.functions as func

from .functions import TriggeredFunction

if TYPE_CHECKING:
    from .host import EmbeddedHost

TASK_HUB = "DevHostHub"
WEBHOOK_PATH = "/runtime/webhooks/durabletask/"
INSTANCE_PLACEHOLDER = "INSTANCEID"


def management_urls(origin: str, instance_id: str) -> dict[str, str]:
    """The Durable management links for one instance, as the extension formats them."""
    base = f"{origin}{WEBHOOK_PATH}instances/{quote(instance_id, safe='')}"
    query = f"taskHub={TASK_HUB}&connection=Storage"
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


def client_binding(origin: str) -> str:
    """The durableClient binding JSON: every URL points back at this host."""
    return json.dumps({
        "taskHubName": TASK_HUB,
        "creationUrls": {
            "createNewInstancePostUri":
                f"{origin}{WEBHOOK_PATH}orchestrators/{{functionName}}[/{{instanceId}}]",
            "createAndWaitOnNewInstancePostUri":
                f"{origin}{WEBHOOK_PATH}orchestrators/{{functionName}}[/{{instanceId}}]"
                "?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}",
        },
        "managementUrls": management_urls(origin, INSTANCE_PLACEHOLDER),
        "rpcBaseUrl": f"{origin}{WEBHOOK_PATH}",
    })


class OutValue(func.Out[Any]):
    """An output binding slot (`func.Out[T]`) the host reads after the call."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class InvocationContext(func.Context):
    """The `context` parameter a function may declare."""

    def __init__(self, function_name: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._local = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def thread_local_storage(self) -> threading.local:
        return self._local

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


async def invoke(host: EmbeddedHost, function: TriggeredFunction, trigger_value: Any) -> Any:
    """Call a triggered function with its trigger, client and output bindings filled in."""
    kwargs: dict[str, Any] = {function.trigger_name: trigger_value}
    if function.client_param is not None:
        kwargs[function.client_param] = client_binding(host.base_url)
    outputs = {name: OutValue() for name in function.queue_outputs}
    kwargs.update(outputs)
    if function.wants_context:
        kwargs["context"] = InvocationContext(function.name)
    result = await host.workers.call(function.fn, function.is_async, **kwargs)
    for name, slot in outputs.items():
        for message in _messages(slot.get()):
            host.enqueue(function.queue_outputs[name], message)
    return result


def _messages(value: Any) -> list[str]:
    """A queue output accepts one message or a list of them (str, bytes or JSON)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    texts = []
    for item in items:
        if isinstance(item, bytes):
            texts.append(item.decode())
        elif isinstance(item, str):
            texts.append(item)
        else:
            texts.append(json.dumps(item))
    return texts
