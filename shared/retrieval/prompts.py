"""What the model is told by the baselines: answer from passages, or rewrite the query."""

from __future__ import annotations

import re

from shared.retrieval.passages import Passage

ANSWER_SYSTEM_PROMPT = """\
You answer a question from the numbered passages in the message and from nothing else.
If the passages do not hold the answer, say that they do not. Reply with the answer first,
then at most two sentences of support that cite passages as [n]."""

REWRITE_SYSTEM_PROMPT = """\
You search a document collection for passages that answer a question. Given the question,
the searches tried so far and what they found, decide what to do next. Reply with exactly
one line:
SEARCH: <a new search query>   to search again, with different words (names, synonyms,
                               the fact that is still missing), or
ANSWER                         when the passages found are enough to answer."""

SEARCH_LINE = re.compile(r"^\s*\**SEARCH(?:\**\s*:|\s*:\s*\**)\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
SNIPPET_CHARS = 300
MAX_QUERY_CHARS = 500


def render_passages(passages: list[Passage], snippet: int | None = None) -> str:
    parts = []
    for n, passage in enumerate(passages, start=1):
        text = passage.text if snippet is None or len(passage.text) <= snippet else passage.text[:snippet] + " ..."
        parts.append(f"[{n}] {passage.title}\n{text}")
    return "\n\n".join(parts) if parts else "(no passages were found)"


def render_answer_message(question: str, passages: list[Passage]) -> str:
    return f"Question: {question}\n\nPassages:\n\n{render_passages(passages)}"


def render_rewrite_message(question: str, queries: list[str], passages: list[Passage]) -> str:
    tried = "\n".join(f"- {q}" for q in queries)
    return f"Question: {question}\n\nSearches so far:\n{tried}\n\nFound so far:\n\n{render_passages(passages, SNIPPET_CHARS)}"


def parse_rewrite(reply: str, tried: list[str]) -> str | None:
    """The next query, or None: the model said ANSWER, gave no query, or repeated one."""
    match = SEARCH_LINE.search(reply)
    if match is None:
        return None
    query = match.group(1).strip().strip("*`\"' ")[:MAX_QUERY_CHARS]
    if not query or query.casefold() in {q.casefold() for q in tried}:
        return None
    return query
