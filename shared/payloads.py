"""Large text travels by reference: Durable history keeps every activity input and
output, so anything big goes to the payloads container and only a key is passed."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

from shared.storage.base import BlobStore

INLINE_LIMIT = 4000
PREVIEW_CHARS = 500


class TextRef(BaseModel):
    """A text inline when small, else a preview plus the blob key of the whole text."""

    text: str
    key: str | None = None

    @classmethod
    def of(cls, text: str, store: BlobStore, *, limit: int = INLINE_LIMIT) -> TextRef:
        if len(text) <= limit:
            return cls(text=text)
        data = text.encode("utf-8")
        key = f"texts/{hashlib.sha256(data).hexdigest()}.txt"
        store.put_bytes(store.containers.payloads, key, data)
        return cls(text=text[:PREVIEW_CHARS], key=key)

    def resolve(self, store: BlobStore) -> str:
        return store.get_text(store.containers.payloads, self.key) if self.key else self.text
