"""SQLite persistence: instances, their histories, undelivered events and queues.

Every fact the host learns (an activity result, a raised event, an episode's decisions)
is written here before the host acts on it, so a killed process resumes from disk.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

TERMINAL = ("Completed", "Failed", "Terminated")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
    input TEXT, output TEXT, custom_status TEXT, parent_id TEXT, parent_task_id INTEGER,
    created TEXT NOT NULL, updated TEXT NOT NULL, actions_seen TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS instances_parent ON instances(parent_id);
CREATE TABLE IF NOT EXISTS events (
    instance_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, meta TEXT,
    PRIMARY KEY (instance_id, seq));
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, event TEXT NOT NULL,
    meta TEXT);
CREATE INDEX IF NOT EXISTS inbox_instance ON inbox(instance_id);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body TEXT NOT NULL,
    dequeue_count INTEGER NOT NULL DEFAULT 0, inserted TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS queue_name ON queue(queue);
"""


class InstanceRow(BaseModel):
    """One orchestration instance as stored; payloads stay JSON text."""

    instance_id: str
    name: str
    status: str
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    parent_id: str | None = None
    parent_task_id: int | None = None
    created: str
    updated: str
    actions_seen: list[dict[str, Any]] = []


class StoredEvent(BaseModel):
    """A history or inbox event with host-private metadata (never sent to the SDK)."""

    event: dict[str, Any]
    meta: dict[str, Any] = {}
    inbox_id: int | None = None


class QueueMessage(BaseModel):
    """A message waiting in a local queue."""

    id: int
    queue: str
    body: str
    dequeue_count: int
    inserted: str


class StateStore:
    """A single SQLite file; one connection guarded by a lock (writers are few)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "devhost.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    @staticmethod
    def _write_instance(db: sqlite3.Connection, row: InstanceRow) -> None:
        db.execute(
            "INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (row.instance_id, row.name, row.status, row.input, row.output, row.custom_status,
             row.parent_id, row.parent_task_id, row.created, row.updated,
             json.dumps(row.actions_seen)))

    def get_instance(self, instance_id: str) -> InstanceRow | None:
        rows = self._rows("SELECT * FROM instances WHERE instance_id=?", (instance_id,))
        return self._to_row(rows[0]) if rows else None

    @staticmethod
    def _to_row(r: tuple[Any, ...]) -> InstanceRow:
        keys = ("instance_id", "name", "status", "input", "output", "custom_status",
                "parent_id", "parent_task_id", "created", "updated")
        return InstanceRow(**dict(zip(keys, r[:10], strict=True)), actions_seen=json.loads(r[10]))

    def list_instances(self, unfinished_only: bool = False) -> list[InstanceRow]:
        where = f"WHERE status NOT IN {TERMINAL}" if unfinished_only else ""
        return [self._to_row(r) for r in self._rows(f"SELECT * FROM instances {where}")]

    def children(self, instance_id: str) -> list[str]:
        rows = self._rows("SELECT instance_id FROM instances WHERE parent_id=? "
                          "ORDER BY parent_task_id", (instance_id,))
        return [r[0] for r in rows]

    def create_instance(self, row: InstanceRow, first: StoredEvent) -> None:
        """A new (or replacing) instance: fresh history, empty inbox, one start event."""
        with self._tx() as db:
            db.execute("DELETE FROM events WHERE instance_id=?", (row.instance_id,))
            db.execute("DELETE FROM inbox WHERE instance_id=?", (row.instance_id,))
            self._write_instance(db, row)
            self._insert_inbox(db, row.instance_id, first)

    def save_instance(self, row: InstanceRow) -> None:
        with self._tx() as db:
            self._write_instance(db, row)

    def history(self, instance_id: str) -> list[StoredEvent]:
        rows = self._rows("SELECT event, meta FROM events WHERE instance_id=? ORDER BY seq",
                          (instance_id,))
        return [StoredEvent(event=json.loads(e), meta=json.loads(m or "{}")) for e, m in rows]

    def inbox(self, instance_id: str) -> list[StoredEvent]:
        rows = self._rows("SELECT id, event, meta FROM inbox WHERE instance_id=? ORDER BY id",
                          (instance_id,))
        return [StoredEvent(inbox_id=i, event=json.loads(e), meta=json.loads(m or "{}"))
                for i, e, m in rows]

    @staticmethod
    def _insert_inbox(db: sqlite3.Connection, instance_id: str, item: StoredEvent) -> None:
        db.execute("INSERT INTO inbox (instance_id, event, meta) VALUES (?,?,?)",
                   (instance_id, json.dumps(item.event), json.dumps(item.meta)))

    def deliver(self, instance_id: str, item: StoredEvent) -> None:
        """Persist an event for the instance's next episode (a checkpoint)."""
        with self._tx() as db:
            self._insert_inbox(db, instance_id, item)

    def commit_episode(self, row: InstanceRow, new_events: list[StoredEvent],
                       consumed: list[int], reset_history: bool = False,
                       notify: tuple[str, StoredEvent] | None = None) -> None:
        """Atomically record one episode: its events, state, and a message to the parent."""
        with self._tx() as db:
            if reset_history:
                db.execute("DELETE FROM events WHERE instance_id=?", (row.instance_id,))
            start = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM events "
                               "WHERE instance_id=?", (row.instance_id,)).fetchone()[0]
            db.executemany(
                "INSERT INTO events VALUES (?,?,?,?)",
                [(row.instance_id, start + i, json.dumps(e.event), json.dumps(e.meta))
                 for i, e in enumerate(new_events)])
            db.executemany("DELETE FROM inbox WHERE id=?", [(i,) for i in consumed])
            self._write_instance(db, row)
            if notify is not None:
                self._insert_inbox(db, *notify)

    def enqueue(self, queue: str, body: str, inserted: str, dequeue_count: int = 0) -> int:
        with self._tx() as db:
            cur = db.execute("INSERT INTO queue (queue, body, dequeue_count, inserted) "
                             "VALUES (?,?,?,?)", (queue, body, dequeue_count, inserted))
            return int(cur.lastrowid or 0)

    def queue_messages(self, queue: str | None = None) -> list[QueueMessage]:
        sql, args = "SELECT id, queue, body, dequeue_count, inserted FROM queue", ()
        if queue is not None:
            sql, args = sql + " WHERE queue=?", (queue,)
        keys = ("id", "queue", "body", "dequeue_count", "inserted")
        return [QueueMessage(**dict(zip(keys, r, strict=True))) for r in self._rows(sql + " ORDER BY id", args)]

    def bump_dequeue(self, message_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE queue SET dequeue_count = dequeue_count + 1 WHERE id=?",
                       (message_id,))

    def delete_message(self, message_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM queue WHERE id=?", (message_id,))

    def move_message(self, message_id: int, to_queue: str) -> None:
        """Move a message to another queue (poison) as a fresh message with the same body."""
        with self._tx() as db:
            db.execute("UPDATE queue SET queue=?, dequeue_count=0 WHERE id=?",
                       (to_queue, message_id))

    def purge(self, instance_id: str) -> int:
        with self._tx() as db:
            db.execute("DELETE FROM events WHERE instance_id=?", (instance_id,))
            db.execute("DELETE FROM inbox WHERE instance_id=?", (instance_id,))
            return db.execute("DELETE FROM instances WHERE instance_id=?",
                              (instance_id,)).rowcount
