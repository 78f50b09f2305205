"""Payload limits of the Azure backends, so what would fail in Azure fails here too.

The Durable Task Scheduler carries every input, output, event and entity state as one
gRPC message of at most 1 MiB (UTF-8), with no blob offload for Python apps. The
extension itself caps an orchestration's custom status at 16 KB of UTF-16 text.
"""
from __future__ import annotations

MAX_MESSAGE_BYTES = 1024 * 1024
MAX_CUSTOM_STATUS_KB = 16


class PayloadTooLarge(ValueError):
    """A payload over a backend limit; the message is what the caller sees."""


def check_message(text: str | None, what: str) -> None:
    """Raise when `text` would not fit in one scheduler message."""
    if text is None:
        return
    size = len(text.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(
            f"The {what} is {size:,} bytes, more than the {MAX_MESSAGE_BYTES:,} bytes the Durable Task "
            "Scheduler accepts in one message. Store large data in Blob Storage and pass a reference.")


def check_custom_status(text: str | None) -> None:
    """The extension's own rule and words (MessagePayloadDataConverter.Serialize)."""
    if text is None:
        return
    size_kb = int(len(text.encode("utf-16-le")) / 1024.0)
    if size_kb > MAX_CUSTOM_STATUS_KB:
        raise PayloadTooLarge(
            f"The UTF-16 size of the JSON-serialized payload must not exceed {MAX_CUSTOM_STATUS_KB:,} KB. "
            f"The current payload size is {size_kb:,} KB.")
