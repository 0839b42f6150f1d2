"""The backend's database: SQLite, one file, WAL; the tables the operations guide's backend keeps.

``vens`` (registrations; ``registration_id`` is the thing name the commands go to), ``readings``
(one row per seed-shaped message on ``volttron/metering``; ``(ven_id, seq)`` unique), ``rejected``
(every message that was not a seed-shaped reading, with the reason: nothing is dropped silently),
``acks`` (acks and event reports from ``ven/ack/+``, against the command's correlationId),
``events`` (DR events the EventCommandService dispatches) and ``dispatches`` (what it sent).
Every method opens its own short transaction; the MQTT thread, the dispatch loop and the HTTP
server share one connection under a lock (SQLite serialises writers anyway).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vens (
    id INTEGER PRIMARY KEY AUTOINCREMENT, registration_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    status TEXT NOT NULL, lat REAL, lon REAL, created_ts REAL NOT NULL, auto_registered INTEGER NOT NULL DEFAULT 0,
    last_seen_ts REAL, will_ts REAL
);
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ven_id TEXT NOT NULL, seq INTEGER, ts REAL NOT NULL,
    power_kw REAL, shed_kw REAL, baseline_kw REAL, active_event TEXT, quality TEXT, circuits TEXT NOT NULL,
    doc TEXT NOT NULL, received_ts REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS readings_ven_seq ON readings (ven_id, seq) WHERE seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS readings_ven_ts ON readings (ven_id, ts);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, reason TEXT NOT NULL, payload TEXT NOT NULL,
    received_ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS acks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ven_id TEXT NOT NULL, correlation_id TEXT, event_id TEXT,
    kind TEXT NOT NULL, status TEXT, seq INTEGER, doc TEXT NOT NULL, received_ts REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS acks_ven_seq ON acks (ven_id, seq) WHERE seq IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, ven_ids TEXT NOT NULL, shed_kw REAL NOT NULL,
    start_ts REAL NOT NULL, end_ts REAL NOT NULL, status TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 1,
    created_ts REAL NOT NULL, updated_ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dispatches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, ven_id TEXT NOT NULL, revision INTEGER NOT NULL,
    correlation_id TEXT NOT NULL, sent_ts REAL NOT NULL, UNIQUE (event_id, ven_id, revision)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, args)

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, args).fetchall()]

    def bump(self, name: str, by: int = 1) -> None:
        self._run("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?", (name, by, by))

    def counters(self) -> dict[str, int]:
        return {r["name"]: r["value"] for r in self._all("SELECT name, value FROM counters")}

    # VENs
    def register(self, registration_id: str, name: str, status: str, lat: float | None, lon: float | None,
                 now: float, auto: bool = False) -> dict[str, Any] | None:
        """The new row, or None when ``registration_id`` is already registered."""
        try:
            self._run("INSERT INTO vens (registration_id, name, status, lat, lon, created_ts, auto_registered) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)", (registration_id, name, status, lat, lon, now, int(auto)))
        except sqlite3.IntegrityError:
            return None
        return self.ven(registration_id)

    def ven(self, registration_id: str) -> dict[str, Any] | None:
        rows = self._all("SELECT * FROM vens WHERE registration_id = ?", (registration_id,))
        return rows[0] if rows else None

    def vens(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM vens ORDER BY id")

    def seen(self, registration_id: str, now: float) -> None:
        self._run("UPDATE vens SET last_seen_ts = ?, will_ts = NULL WHERE registration_id = ?", (now, registration_id))

    def will(self, registration_id: str, now: float) -> None:
        self._run("UPDATE vens SET will_ts = ? WHERE registration_id = ?", (now, registration_id))

    # readings
    def add_reading(self, ven_id: str, reading: dict[str, Any], now: float) -> bool:
        """False when ``(ven_id, seq)`` was stored already (a QoS-1 redelivery or a resend)."""
        try:
            self._run("INSERT INTO readings (ven_id, seq, ts, power_kw, shed_kw, baseline_kw, active_event, quality, "
                      "circuits, doc, received_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (ven_id, reading.get("seq"), reading["ts"], reading.get("power_kw"), reading.get("shed_kw"),
                       reading.get("baseline_kw"), reading.get("active_event"), reading.get("quality"),
                       json.dumps(reading["circuits"]), json.dumps(reading), now))
        except sqlite3.IntegrityError:
            return False
        return True

    def readings(self, ven_id: str | None = None, since_ts: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        sql = "SELECT doc, received_ts FROM readings WHERE 1=1"
        args: list[Any] = []
        if ven_id is not None:
            sql += " AND ven_id = ?"
            args.append(ven_id)
        if since_ts is not None:
            sql += " AND received_ts >= ?"
            args.append(since_ts)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [dict(json.loads(r["doc"]), received_ts=r["received_ts"]) for r in reversed(self._all(sql, tuple(args)))]

    def reading_count(self) -> int:
        return int(self._all("SELECT COUNT(*) AS n FROM readings")[0]["n"])

    def reject(self, topic: str, reason: str, payload: bytes, now: float) -> None:
        self._run("INSERT INTO rejected (topic, reason, payload, received_ts) VALUES (?, ?, ?, ?)",
                  (topic, reason, payload.decode("utf-8", errors="replace")[:65536], now))

    def rejected(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(reversed(self._all("SELECT * FROM rejected ORDER BY id DESC LIMIT ?", (limit,))))

    # acks
    def add_ack(self, ven_id: str, doc: dict[str, Any], now: float) -> bool:
        kind = "event_report" if doc.get("type") == "event_report" else "ack"
        try:
            self._run("INSERT INTO acks (ven_id, correlation_id, event_id, kind, status, seq, doc, received_ts) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (ven_id, doc.get("correlationId"), doc.get("event_id"), kind, doc.get("status"), doc.get("seq"),
                       json.dumps(doc), now))
        except sqlite3.IntegrityError:
            return False
        return True

    def acks(self, correlation_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if correlation_id is None:
            rows = self._all("SELECT * FROM acks ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._all("SELECT * FROM acks WHERE correlation_id = ? ORDER BY id DESC LIMIT ?", (correlation_id, limit))
        return [dict(r, doc=json.loads(r["doc"])) for r in reversed(rows)]

    # events
    def add_event(self, event_id: str, ven_ids: list[str], shed_kw: float, start_ts: float, end_ts: float,
                  status: str, now: float) -> dict[str, Any] | None:
        try:
            self._run("INSERT INTO events (event_id, ven_ids, shed_kw, start_ts, end_ts, status, created_ts, updated_ts) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (event_id, json.dumps(ven_ids), shed_kw, start_ts, end_ts, status,
                                                         now, now))
        except sqlite3.IntegrityError:
            return None
        return self.event(event_id)

    def update_event(self, event_id: str, now: float, **fields: Any) -> dict[str, Any] | None:
        if not fields:
            return self.event(event_id)
        if "ven_ids" in fields:
            fields["ven_ids"] = json.dumps(fields["ven_ids"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._run(f"UPDATE events SET {sets}, revision = revision + 1, updated_ts = ? WHERE event_id = ?",
                  (*fields.values(), now, event_id))
        return self.event(event_id)

    def event(self, event_id: str) -> dict[str, Any] | None:
        rows = self._all("SELECT * FROM events WHERE event_id = ?", (event_id,))
        return _event(rows[0]) if rows else None

    def events(self) -> list[dict[str, Any]]:
        return [_event(r) for r in self._all("SELECT * FROM events ORDER BY id")]

    def dispatched(self, event_id: str, ven_id: str, revision: int) -> bool:
        return bool(self._all("SELECT 1 FROM dispatches WHERE event_id = ? AND ven_id = ? AND revision = ?",
                              (event_id, ven_id, revision)))

    def add_dispatch(self, event_id: str, ven_id: str, revision: int, correlation_id: str, now: float) -> None:
        self._run("INSERT OR IGNORE INTO dispatches (event_id, ven_id, revision, correlation_id, sent_ts) "
                  "VALUES (?, ?, ?, ?, ?)", (event_id, ven_id, revision, correlation_id, now))

    def dispatches(self, event_id: str | None = None) -> list[dict[str, Any]]:
        if event_id is None:
            return self._all("SELECT * FROM dispatches ORDER BY id")
        return self._all("SELECT * FROM dispatches WHERE event_id = ? ORDER BY id", (event_id,))


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return dict(row, ven_ids=json.loads(row["ven_ids"]))
