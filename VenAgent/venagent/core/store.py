"""SQLite persistence of everything the VEN must not forget across a restart.

One file, WAL journal (readers never block the writer, and a crash mid-write loses at most the
last transaction), stdlib ``sqlite3`` only. Rows hold JSON documents owned by the engine; the
store knows tables, not event semantics. ``":memory:"`` gives a throwaway store for tests.

Tables: ``events`` (one document per event: fields, state, total_at_start, pre-event state,
shed set, M&V accumulators), ``acks`` (by correlationId, insertion-ordered for eviction),
``overrides`` (NULL state = explicitly cleared, so a config override does not come back),
``history`` (event state transitions) and ``restores`` (pending staggered restore steps).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from ven_common.contract import Ack

from venagent.core.errors import StoreError

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, state TEXT NOT NULL, start_ts REAL, end_ts REAL, doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS acks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, correlation_id TEXT NOT NULL UNIQUE, ack TEXT NOT NULL,
    fingerprint TEXT
);
CREATE TABLE IF NOT EXISTS overrides (circuit TEXT PRIMARY KEY, state INTEGER);
CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS restores (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, circuit TEXT NOT NULL, due_ts REAL NOT NULL, event_id TEXT,
    kw_before REAL NOT NULL DEFAULT 0
);
"""

HISTORY_KEEP = 1000


class VenStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # A bounded page cache (512 KB, not 2 MB): the agent's memory must not creep while it fills.
        self._conn.execute("PRAGMA cache_size=-512")
        with self._conn:
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema {row[0]} is newer than this code ({SCHEMA_VERSION})")
            elif int(row[0]) < 2:
                # v2: the command's fingerprint beside its ack (a reused correlationId is told
                # apart from a re-sent command); v1 rows have none and are replayed as before.
                self._conn.execute("ALTER TABLE acks ADD COLUMN fingerprint TEXT")
                self._conn.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._conn.close()

    # events
    def save_event(self, doc: dict[str, Any]) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO events (event_id, state, start_ts, end_ts, doc) VALUES (?, ?, ?, ?, ?)",
                (doc["event_id"], doc["state"], doc.get("start_ts"), doc.get("end_ts"), _dump(doc)),
            )

    def load_event(self, event_id: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT doc FROM events WHERE event_id=?", (event_id,)).fetchone()
        return None if row is None else _load(row[0])

    def load_live_events(self) -> list[dict[str, Any]]:
        """Scheduled and active events (the only ones the engine keeps in memory)."""
        rows = self._conn.execute(
            "SELECT doc FROM events WHERE state IN ('scheduled', 'active') ORDER BY start_ts"
        ).fetchall()
        return [_load(r[0]) for r in rows]

    def load_recent_events(self, limit: int) -> list[dict[str, Any]]:
        """The latest events in any state (completed ones carry their report), newest start first."""
        rows = self._conn.execute("SELECT doc FROM events ORDER BY start_ts DESC LIMIT ?", (limit,)).fetchall()
        return [_load(r[0]) for r in rows]

    # acks
    def get_ack(self, correlation_id: str) -> Ack | None:
        found = self.get_ack_and_fingerprint(correlation_id)
        return None if found is None else found[0]

    def get_ack_and_fingerprint(self, correlation_id: str) -> tuple[Ack, str | None] | None:
        row = self._conn.execute("SELECT ack, fingerprint FROM acks WHERE correlation_id=?", (correlation_id,)).fetchone()
        return None if row is None else (cast(Ack, _load(row[0])), row[1])  # an ack put_ack stored

    def put_ack(self, correlation_id: str, ack: Mapping[str, Any], keep: int, fingerprint: str | None = None) -> None:
        with self._conn:
            self._conn.execute("INSERT OR IGNORE INTO acks (correlation_id, ack, fingerprint) VALUES (?, ?, ?)",
                               (correlation_id, _dump(ack), fingerprint))
            self._conn.execute(
                "DELETE FROM acks WHERE seq <= (SELECT MAX(seq) FROM acks) - ?", (keep,)
            )

    # overrides
    def set_override(self, circuit: str, state: bool | None) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO overrides (circuit, state) VALUES (?, ?)",
                (circuit, None if state is None else int(state)),
            )

    def load_overrides(self) -> dict[str, bool | None]:
        rows = self._conn.execute("SELECT circuit, state FROM overrides").fetchall()
        return {name: None if state is None else bool(state) for name, state in rows}

    # history
    def append_history(self, entry: dict[str, Any]) -> None:
        with self._conn:
            self._conn.execute("INSERT INTO history (doc) VALUES (?)", (_dump(entry),))
            self._conn.execute("DELETE FROM history WHERE seq <= (SELECT MAX(seq) FROM history) - ?", (HISTORY_KEEP,))

    def load_history(self, limit: int) -> list[dict[str, Any]]:
        """Newest first."""
        rows = self._conn.execute("SELECT doc FROM history ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [_load(r[0]) for r in rows]

    # pending restores
    def save_restores(self, steps: list[tuple[str, float, str | None, float]]) -> None:
        """Replace the pending restore steps (circuit, due_ts, event_id, kw_before)."""
        with self._conn:
            self._conn.execute("DELETE FROM restores")
            self._conn.executemany("INSERT INTO restores (circuit, due_ts, event_id, kw_before) VALUES (?, ?, ?, ?)", steps)

    def load_restores(self) -> list[tuple[str, float, str | None, float]]:
        rows = self._conn.execute("SELECT circuit, due_ts, event_id, kw_before FROM restores ORDER BY seq").fetchall()
        return [(str(c), float(d), e, float(k)) for c, d, e, k in rows]


def _dump(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, allow_nan=False)


def _load(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"corrupt row: {exc}") from None
    if not isinstance(doc, dict):
        raise StoreError("corrupt row: not an object")
    return doc
