"""Cutting a corpus into passages: the units the baselines index, retrieve and cite.

A passage never spans two `## title` sections, so every passage cites one section. Long
sections are cut at paragraph breaks, then at sentence ends or spaces, never mid-word.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel

from shared.corpus import SECTION_HEADER

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
SENTENCE_END = re.compile(r"[.!?]\s")


class Passage(BaseModel):
    id: int
    title: str
    document_id: str | None = None
    start: int
    end: int
    text: str

    @property
    def indexed_text(self) -> str:
        """What the indexes see: the section title is part of every passage."""
        return f"{self.title}\n{self.text}"


def sections(context: str) -> Iterator[tuple[str | None, int, int]]:
    """(title, start, end) of each section's body; text before the first header has no title."""
    headers = list(SECTION_HEADER.finditer(context))
    first = headers[0].start() if headers else len(context)
    if context[:first].strip():
        yield None, 0, first
    for n, header in enumerate(headers):
        end = headers[n + 1].start() if n + 1 < len(headers) else len(context)
        yield header.group(1), header.end() + 1, end


def section_texts(context: str, titles: list[str]) -> dict[str, str]:
    """The bodies of the named sections (the first one of each title)."""
    wanted = set(titles)
    found: dict[str, str] = {}
    for title, start, end in sections(context):
        if title in wanted and title not in found:
            found[title] = context[start:end].strip()
    return found


def _cuts(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    """Spans of at most `max_chars`, ending at a paragraph break, sentence end or space."""
    while end - start > max_chars:
        window = text[start : start + max_chars]
        cut = 0
        for pattern in (PARAGRAPH_BREAK, SENTENCE_END):
            ends = [m.end() for m in pattern.finditer(window) if m.end() > max_chars // 3]
            if ends:
                cut = ends[-1]
                break
        if not cut:
            space = window.rfind(" ", max_chars // 3)
            cut = space + 1 if space > 0 else max_chars
        yield start, start + cut
        start += cut
    yield start, end


def split_passages(context: str, document_ids: dict[str, str | None], max_chars: int) -> list[Passage]:
    """Every non-blank stretch of the corpus in exactly one passage, in corpus order."""
    passages: list[Passage] = []
    for title, section_start, section_end in sections(context):
        for start, end in _cuts(context, section_start, section_end, max_chars):
            body = context[start:end]
            if not body.strip():
                continue
            lead = len(body) - len(body.lstrip())
            start, end = start + lead, start + len(body.rstrip())
            passages.append(
                Passage(
                    id=len(passages),
                    title=title if title is not None else f"characters {start}-{end}",
                    document_id=document_ids.get(title) if title is not None else None,
                    start=start,
                    end=end,
                    text=context[start:end],
                )
            )
    return passages
