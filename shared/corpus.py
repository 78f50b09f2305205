"""Turning user input into the `context` string and back into citable sections."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from pydantic import BaseModel, ValidationError

from shared.models import Document
from shared.storage.base import BlobNotFound, BlobStore

SECTION_HEADER = re.compile(r"^## (.+?)\s*$", re.MULTILINE)
TEXT_SUFFIXES = {".txt", ".md"}


class CorpusError(ValueError):
    """A corpus that cannot be read; the message says what to fix."""


def render_documents(documents: list[Document]) -> str:
    """Documents become `## title` sections so code can split on headers."""
    return "\n\n".join(f"## {d.title}\n{d.content}" for d in documents)


def section_titles(context: str) -> list[str]:
    return SECTION_HEADER.findall(context)


def document_index(documents: list[Document] | None, context: str) -> dict[str, str | None]:
    """Section title -> document id, used to map `used_sections` to sources."""
    if documents:
        return {d.title: d.id for d in documents}
    return {title: None for title in section_titles(context)}


def load_corpus_path(path: Path) -> tuple[str, list[Document] | None]:
    """Read a text file, a folder of .txt/.md files or a .jsonl of documents."""
    if not path.exists():
        raise CorpusError(f"corpus path {path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise CorpusError(f"folder {path} holds no .txt or .md files")
        docs = [Document(id=str(p.relative_to(path)), title=str(p.relative_to(path)), content=_read_text(p)) for p in files]
        return render_documents(docs), docs
    if path.suffix.lower() == ".jsonl":
        docs = list(_read_jsonl(path))
        if not docs:
            raise CorpusError(f"{path} holds no documents")
        return render_documents(docs), docs
    text = _read_text(path)
    if not text.strip():
        raise CorpusError(f"{path} is empty")
    return text, None


def _read_text(path: Path) -> str:
    """UTF-8 text, a leading byte-order mark dropped; only regular files are read.

    The file is opened without blocking and checked before reading, so a FIFO (whose
    read would wait for a writer forever) or a device is refused at once.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise CorpusError(f"{path} cannot be read: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CorpusError(f"{path} is not a regular file (a FIFO, socket or device); give a text file or a folder")
        data = handle.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _read_jsonl(path: Path):
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield Document.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise CorpusError(f"{path} line {number}: not a {{id?, title, content}} document: {exc}") from exc


class CorpusIndex(BaseModel):
    """Stored beside a corpus so its size and citable sections are known without reading it."""

    chars: int
    sections: dict[str, str | None]


def index_key(corpus_id: str) -> str:
    return f"{corpus_id}.index.json"


def save_corpus(store: BlobStore, text: str, documents: list[Document] | None = None) -> str:
    """Store a corpus (once, content-addressed) with its index; return its id."""
    corpus_id = store.put_corpus(text)
    if not store.exists(store.containers.corpora, index_key(corpus_id)):
        index = CorpusIndex(chars=len(text), sections=document_index(documents, text))
        store.put_text(store.containers.corpora, index_key(corpus_id), index.model_dump_json())
    return corpus_id


def load_index(store: BlobStore, corpus_id: str) -> CorpusIndex:
    try:
        return CorpusIndex.model_validate_json(store.get_bytes(store.containers.corpora, index_key(corpus_id)))
    except BlobNotFound:
        raise CorpusError(f"no stored corpus with id {corpus_id}") from None


def section_text(store: BlobStore, corpus_id: str, title: str) -> str | None:
    """The text of the first section titled `title`, None if the corpus has none.

    A section runs to the next header that is one of the corpus's own sections, so a
    document whose content holds a `## ` line is returned whole. Raises CorpusError for
    an unknown corpus.
    """
    index = load_index(store, corpus_id)
    if title not in index.sections:
        return None
    text = store.local_path(store.containers.corpora, corpus_id).read_text(encoding="utf-8")
    headers = SECTION_HEADER.finditer(text)
    for header in headers:
        if header.group(1) == title:
            line_end = text.find("\n", header.start())
            start = len(text) if line_end < 0 else line_end + 1
            end = next((h.start() for h in headers if h.group(1) in index.sections), len(text))
            return text[start:end].rstrip("\n")
    return None
