"""The `rlm-batch` queue trigger: every valid message starts exactly one batch.

A message that can never succeed (not JSON, failing validation, unknown corpus, a cost
budget over unpriced models) goes to `rlm-batch-poison` at once, wrapped with the reason,
and the trigger returns normally: retrying it would only fail the same way, and Azure's own
poison handling copies the message without saying why. Anything else that fails (storage, the Durable client)
raises, so the host retries it and, after maxDequeueCount, moves it to the same queue.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from rlm_activities.batch import submit_batch
from rlm_activities.batch_models import BATCH_POISON_QUEUE, BATCH_QUEUE, BatchRequest
from rlm_activities.inputs import InvalidInput, NotJson, load_json, validate_as
from shared.catalog import Outcome
from shared.corpus import CorpusError
from shared.starting import UnpricedModels

bp = df.Blueprint()
log = logging.getLogger(__name__)

STORAGE = "AzureWebJobsStorage"
# A queue message holds 64 KB; the wrapped copy must fit in one too.
POISON_MESSAGE_CHARS = 48_000


class Rejected(Exception):
    """A message that will never start a batch, with what is wrong with it."""

    def __init__(self, reason: str, details: Any = None) -> None:
        super().__init__(reason)
        self.details = details


def parse_message(body: bytes) -> BatchRequest:
    """The message as a batch request, read as strictly as an HTTP body."""
    try:
        data = load_json(body)
    except NotJson as exc:
        raise Rejected("the message is not JSON", exc.details) from None
    except InvalidInput as exc:
        raise Rejected(str(exc), exc.details) from None
    try:
        return validate_as(data, BatchRequest, "batch request")
    except InvalidInput as exc:
        raise Rejected("the message is not a valid batch request", exc.details) from None


def poison_body(message: func.QueueMessage, reason: str, details: Any) -> str:
    original = message.get_body().decode("utf-8", errors="replace")
    return json.dumps(
        {
            "reason": reason,
            "details": details,
            "message_id": message.id,
            "message": original[:POISON_MESSAGE_CHARS],
            "truncated": len(original) > POISON_MESSAGE_CHARS,
        }
    )


@bp.queue_trigger(arg_name="message", queue_name=BATCH_QUEUE, connection=STORAGE)
@bp.queue_output(arg_name="poison", queue_name=BATCH_POISON_QUEUE, connection=STORAGE)
@bp.durable_client_input(client_name="client")
async def batch_from_queue(message: func.QueueMessage, poison: func.Out[str], client: df.DurableOrchestrationClient) -> None:
    """Start the batch a message describes; a message without batch_id gets one from its content.

    A redelivered message finds its batch claimed with the same body and changes nothing;
    a message reusing a batch_id with another body is refused to the poison queue.
    """
    try:
        request = parse_message(message.get_body())
        batch_id = request.batch_id or request.content_id()
        try:
            outcome = await submit_batch(client, request, batch_id)
        except (CorpusError, UnpricedModels) as exc:
            raise Rejected(str(exc)) from None
        if outcome is Outcome.CONFLICT:
            raise Rejected(f"batch {batch_id} was started with another body; use a new batch_id to run this one")
    except Rejected as exc:
        log.warning("Batch message %s rejected: %s", message.id, exc)
        poison.set(poison_body(message, str(exc), exc.details))
        return
    if outcome is Outcome.NEW:
        log.info("Batch %s started from message %s", batch_id, message.id)
    else:
        log.info("Batch %s already started with this body; message %s changes nothing", batch_id, message.id)
