"""The passage store and its keyword index: one SQLite file holding every passage and an
FTS5 full-text index over them, ranked by FTS5's built-in BM25.

One file is easy to keep beside the corpus in blob storage and to open read-only from a
local copy; SQLite ships with Python, so the index needs no service and no extra package.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from shared.retrieval.passages import Passage

SCHEMA = """
CREATE TABLE passages (id INTEGER PRIMARY KEY, title TEXT NOT NULL, document_id TEXT,
                       start INTEGER NOT NULL, end INTEGER NOT NULL, text TEXT NOT NULL);
CREATE VIRTUAL TABLE passage_terms USING fts5(title, text, content='passages', content_rowid='id',
                                               tokenize='porter unicode61 remove_diacritics 2');
"""
# A title match counts more than a body match: titles name what a section is about.
RANK = "bm25(passage_terms, 2.0, 1.0)"
QUERY_WORD = re.compile(r"[^\W_]+")
# Words that carry no meaning in a question; FTS5 has no stop list of its own.
STOPWORDS = frozenset(
    "a an and are as at be by did do does for from has have how in is it its many much of on or the "
    "this that to was were what when where which who whom whose why with".split()
)
MAX_QUERY_WORDS = 64


def build_passage_index(passages: Iterable[Passage], path: Path) -> int:
    """Write the passages and their FTS5 index into a new SQLite file; returns the count."""
    path.unlink(missing_ok=True)
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(SCHEMA)
        rows = [(p.id, p.title, p.document_id, p.start, p.end, p.text) for p in passages]
        db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("INSERT INTO passage_terms(passage_terms) VALUES ('rebuild')")
        db.execute("INSERT INTO passage_terms(passage_terms) VALUES ('optimize')")
    return len(rows)


def match_expression(query: str) -> str | None:
    """The query's words as an FTS5 OR of quoted terms (so no word is read as FTS syntax);
    None when no word is left."""
    words = [w for w in QUERY_WORD.findall(query.casefold()) if w not in STOPWORDS]
    unique = list(dict.fromkeys(words))[:MAX_QUERY_WORDS]
    return " OR ".join(f'"{w}"' for w in unique) if unique else None


class PassageIndex:
    """A read-only view of a built passage file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        # immutable: the file never changes once built, so SQLite takes no locks on it.
        return sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False)

    def count(self) -> int:
        with closing(self._connect()) as db:
            return db.execute("SELECT count(*) FROM passages").fetchone()[0]

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The best `k` passages for the query by BM25: (id, score), best first, higher is better."""
        expression = match_expression(query)
        if expression is None:
            return []
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT rowid, {RANK} FROM passage_terms WHERE passage_terms MATCH ? ORDER BY {RANK} LIMIT ?",
                (expression, k),
            ).fetchall()
        return [(rowid, -score) for rowid, score in rows]

    def passages(self, ids: list[int]) -> list[Passage]:
        """The passages with these ids, in the order given."""
        if not ids:
            return []
        with closing(self._connect()) as db:
            marks = ",".join("?" * len(ids))
            rows = db.execute(f"SELECT id, title, document_id, start, end, text FROM passages WHERE id IN ({marks})", ids)
            found = {
                row[0]: Passage(id=row[0], title=row[1], document_id=row[2], start=row[3], end=row[4], text=row[5])
                for row in rows
            }
        return [found[i] for i in ids if i in found]

    def all_texts(self) -> list[str]:
        """Every passage's indexed text, by id (for embedding them)."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT title, text FROM passages ORDER BY id").fetchall()
        return [f"{title}\n{text}" for title, text in rows]
