"""SQLite persistence: instances, their histories, entities, undelivered events and queues.

Every fact the host learns (an activity result, a raised event, an episode's decisions,
an entity batch) is written here before the host acts on it, so a killed process resumes
from disk. Orchestrations and entities share the inbox, keyed by instance id (entity ids
are `@name@key`, which no orchestration id may use).
"""
from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

TERMINAL = ("Completed", "Failed", "Terminated")
DB_FILE = "devhost.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
    input TEXT, output TEXT, custom_status TEXT, parent_id TEXT, parent_task_id INTEGER,
    created TEXT NOT NULL, updated TEXT NOT NULL, actions_seen TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS instances_parent ON instances(parent_id);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created, instance_id);
CREATE TABLE IF NOT EXISTS events (
    instance_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, meta TEXT,
    PRIMARY KEY (instance_id, seq));
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, event TEXT NOT NULL,
    meta TEXT);
CREATE INDEX IF NOT EXISTS inbox_instance ON inbox(instance_id);
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY, name TEXT NOT NULL, key TEXT NOT NULL,
    exists_ INTEGER NOT NULL, state TEXT, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body TEXT NOT NULL,
    dequeue_count INTEGER NOT NULL DEFAULT 0, inserted TEXT NOT NULL, visible_at TEXT);
CREATE INDEX IF NOT EXISTS queue_name ON queue(queue);
"""
#: Columns added after the first release; older state dirs gain them on open.
_ADDED_COLUMNS = (("queue", "visible_at", "TEXT"),)


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


class EntityRow(BaseModel):
    """One entity: its state as JSON text, and whether it exists (has state)."""

    entity_id: str
    name: str
    key: str
    exists: bool = False
    state: str | None = None
    updated: str


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
    visible_at: str | None = None


class InstanceQuery(BaseModel):
    """Filters of the Durable HTTP API's instance listing (all optional)."""

    created_from: str | None = None
    created_to: str | None = None
    statuses: list[str] = []
    prefix: str | None = None
    top: int | None = None
    after: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if self.created_from:
            clauses.append("created >= ?")
            args.append(self.created_from)
        if self.created_to:
            clauses.append("created <= ?")
            args.append(self.created_to)
        if self.statuses:
            clauses.append(f"status IN ({','.join('?' * len(self.statuses))})")
            args.extend(self.statuses)
        if self.prefix:
            clauses.append("substr(instance_id, 1, ?) = ?")
            args.extend([len(self.prefix), self.prefix])
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _token(created: str, instance_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created, instance_id]).encode()).decode()


def _untoken(token: str) -> tuple[str, str]:
    try:
        created, instance_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(created), str(instance_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("the continuation token is not one this host issued") from exc


class StateStore:
    """A single SQLite file; one connection guarded by a lock (writers are few)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DB_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        for table, column, kind in _ADDED_COLUMNS:
            present = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

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

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # ---- instances -------------------------------------------------------------------
    @staticmethod
    def _write_instance(db: sqlite3.Connection, row: InstanceRow) -> None:
        db.execute(
            "INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (row.instance_id, row.name, row.status, row.input, row.output, row.custom_status,
             row.parent_id, row.parent_task_id, row.created, row.updated,
             json.dumps(row.actions_seen)))

    @staticmethod
    def _to_row(r: tuple[Any, ...]) -> InstanceRow:
        keys = ("instance_id", "name", "status", "input", "output", "custom_status",
                "parent_id", "parent_task_id", "created", "updated")
        return InstanceRow(**dict(zip(keys, r[:10], strict=True)), actions_seen=json.loads(r[10]))

    def get_instance(self, instance_id: str) -> InstanceRow | None:
        rows = self._rows("SELECT * FROM instances WHERE instance_id=?", (instance_id,))
        return self._to_row(rows[0]) if rows else None

    def list_instances(self, unfinished_only: bool = False) -> list[InstanceRow]:
        where = f"WHERE status NOT IN {TERMINAL}" if unfinished_only else ""
        return [self._to_row(r) for r in self._rows(f"SELECT * FROM instances {where} ORDER BY created")]

    def query_instances(self, query: InstanceQuery) -> tuple[list[InstanceRow], str | None]:
        """One page of matching instances, oldest first, and the token of the next page."""
        where, args = query.where()
        if query.after:
            created, instance_id = _untoken(query.after)
            where += (" AND " if where else " WHERE ") + "(created, instance_id) > (?, ?)"
            args += [created, instance_id]
        sql = f"SELECT * FROM instances{where} ORDER BY created, instance_id"
        if query.top:
            sql += f" LIMIT {int(query.top) + 1}"
        rows = [self._to_row(r) for r in self._rows(sql, args)]
        if query.top and len(rows) > query.top:
            rows = rows[:query.top]
            return rows, _token(rows[-1].created, rows[-1].instance_id)
        return rows, None

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

    def replace_history(self, row: InstanceRow, events: list[StoredEvent]) -> None:
        """Rewrite an instance's history (rewind) and its row in one transaction."""
        with self._tx() as db:
            db.execute("DELETE FROM events WHERE instance_id=?", (row.instance_id,))
            db.executemany("INSERT INTO events VALUES (?,?,?,?)",
                           [(row.instance_id, i, json.dumps(e.event), json.dumps(e.meta))
                            for i, e in enumerate(events)])
            self._write_instance(db, row)

    def inbox(self, instance_id: str) -> list[StoredEvent]:
        rows = self._rows("SELECT id, event, meta FROM inbox WHERE instance_id=? ORDER BY id",
                          (instance_id,))
        return [StoredEvent(inbox_id=i, event=json.loads(e), meta=json.loads(m or "{}"))
                for i, e, m in rows]

    def inbox_owners(self) -> list[str]:
        """Every instance or entity id with events waiting."""
        return [r[0] for r in self._rows("SELECT DISTINCT instance_id FROM inbox")]

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
                       notify: Sequence[tuple[str, StoredEvent]] = ()) -> None:
        """Atomically record one episode: its events, state, and messages to others."""
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
            for target, item in notify:
                self._insert_inbox(db, target, item)

    def purge(self, instance_ids: Sequence[str]) -> int:
        with self._tx() as db:
            deleted = 0
            for instance_id in instance_ids:
                db.execute("DELETE FROM events WHERE instance_id=?", (instance_id,))
                db.execute("DELETE FROM inbox WHERE instance_id=?", (instance_id,))
                deleted += db.execute("DELETE FROM instances WHERE instance_id=?",
                                      (instance_id,)).rowcount
            return deleted

    # ---- entities --------------------------------------------------------------------
    def get_entity(self, entity_id: str) -> EntityRow | None:
        rows = self._rows("SELECT entity_id, name, key, exists_, state, updated FROM entities "
                          "WHERE entity_id=?", (entity_id,))
        if not rows:
            return None
        entity_id, name, key, exists, state, updated = rows[0]
        return EntityRow(entity_id=entity_id, name=name, key=key, exists=bool(exists), state=state,
                         updated=updated)

    def commit_entity_batch(self, entity: EntityRow, consumed: list[int],
                            notify: Sequence[tuple[str, StoredEvent]]) -> None:
        """An entity batch: new state, operations taken off the inbox, responses sent."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO entities VALUES (?,?,?,?,?,?)",
                       (entity.entity_id, entity.name, entity.key, int(entity.exists), entity.state,
                        entity.updated))
            db.executemany("DELETE FROM inbox WHERE id=?", [(i,) for i in consumed])
            for target, item in notify:
                self._insert_inbox(db, target, item)

    # ---- queues ----------------------------------------------------------------------
    def enqueue(self, queue: str, body: str, inserted: str, dequeue_count: int = 0) -> int:
        with self._tx() as db:
            cur = db.execute("INSERT INTO queue (queue, body, dequeue_count, inserted) "
                             "VALUES (?,?,?,?)", (queue, body, dequeue_count, inserted))
            return int(cur.lastrowid or 0)

    def queue_messages(self, queue: str | None = None) -> list[QueueMessage]:
        sql, args = "SELECT id, queue, body, dequeue_count, inserted, visible_at FROM queue", ()
        if queue is not None:
            sql, args = sql + " WHERE queue=?", (queue,)
        keys = ("id", "queue", "body", "dequeue_count", "inserted", "visible_at")
        return [QueueMessage(**dict(zip(keys, r, strict=True)))
                for r in self._rows(sql + " ORDER BY id", args)]

    def bump_dequeue(self, message_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE queue SET dequeue_count = dequeue_count + 1 WHERE id=?",
                       (message_id,))

    def hide_message(self, message_id: int, visible_at: str) -> None:
        """A failed message reappears only after the visibility timeout."""
        with self._tx() as db:
            db.execute("UPDATE queue SET visible_at=? WHERE id=?", (visible_at, message_id))

    def delete_message(self, message_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM queue WHERE id=?", (message_id,))

    def move_message(self, message_id: int, to_queue: str) -> None:
        """Move a message to another queue (poison) as a fresh message with the same body."""
        with self._tx() as db:
            db.execute("UPDATE queue SET queue=?, dequeue_count=0, visible_at=NULL WHERE id=?",
                       (to_queue, message_id))
