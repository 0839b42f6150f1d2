"""Numbered memory of everything the VenAgent published on the bus.

VOLTTRON pubsub does not queue for absent subscribers: whatever the VEN publishes while the
bridge is down (killed, restarting) would be lost. Every message therefore carries
``(vepoch, vseq)`` in its headers, and the bridge asks for the ones it missed over RPC
(``get_journal_since``). With a file the journal survives VenAgent restarts (same epoch,
numbering goes on), so even a VEN restart while the bridge is down loses nothing; ``vepoch``
changes only when the journal file is new, which tells the bridge that numbering started again.

The entries live only in SQLite (the file, or an in-memory database before the agent is
configured), as JSON text: the bridge asks for them rarely, and an hour of readings kept as
Python objects grew the agent by ~16 MB an hour for 5 circuits (and by gigabytes for a campus).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

# Old entries are deleted in batches: one DELETE per this many appends.
TRIM_EVERY = 500
# And the file holds at most this much message text: an hour of a 500-circuit campus's readings
# (~30 KB each) would otherwise be ~220 MB. The newest entries are kept.
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    topic: str
    message: Any


class Journal:
    def __init__(self, capacity: int = 7200, epoch: str | None = None, path: str | None = None,
                 max_bytes: int = MAX_BYTES) -> None:
        # One hour of 1 Hz metering plus the events around it.
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._floor = 0   # entries at or below this seq were trimmed for size
        self.epoch = epoch or uuid.uuid4().hex
        db = sqlite3.connect(path or ":memory:", isolation_level=None, check_same_thread=False)
        if path is not None:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        # Appends touch only the last pages and reads are rare (a bridge catching up): a small page
        # cache, not SQLite's 2 MB default that fills over the agent's first hour.
        db.execute("PRAGMA cache_size=-256")
        db.execute("CREATE TABLE IF NOT EXISTS journal_meta (id INTEGER PRIMARY KEY CHECK (id = 1), epoch TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, message TEXT NOT NULL)")
        row = db.execute("SELECT epoch FROM journal_meta WHERE id = 1").fetchone()
        if row is None:
            db.execute("INSERT INTO journal_meta (id, epoch) VALUES (1, ?)", (self.epoch,))
        else:
            self.epoch = epoch or str(row[0])
        last = db.execute("SELECT MAX(seq) FROM journal").fetchone()[0]
        self._seq = int(last or 0)
        self._db: sqlite3.Connection | None = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def last_seq(self) -> int:
        return self._seq

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the journal is closed")
        return self._db

    def append(self, topic: str, message: Any) -> int:
        db = self._conn()
        self._seq += 1
        db.execute("INSERT OR REPLACE INTO journal (seq, topic, message) VALUES (?, ?, ?)",
                   (self._seq, topic, json.dumps(message, default=str)))
        if self._seq % TRIM_EVERY == 0:
            self._trim(db)
        return self._seq

    def _trim(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM journal WHERE seq <= ?", (self._seq - self.capacity,))
        # The newest entries whose text fits max_bytes stay (a window sum from the newest down).
        over = db.execute("SELECT seq FROM (SELECT seq, SUM(LENGTH(message)) OVER (ORDER BY seq DESC) AS total "
                          "FROM journal) WHERE total > ? ORDER BY seq DESC LIMIT 1", (self.max_bytes,)).fetchone()
        if over is not None:
            self._floor = max(self._floor, int(over[0]))
            db.execute("DELETE FROM journal WHERE seq <= ?", (self._floor,))

    def since(self, epoch: str | None, after_seq: int, limit: int = 2000) -> dict[str, Any]:
        """Entries after ``after_seq`` of ``epoch``; a different epoch means "from the start".
        Only the last ``capacity`` entries count as kept (the file may hold a few more until trimmed)."""
        db = self._conn()
        start = after_seq if epoch == self.epoch else 0
        kept_from = max(self._seq - self.capacity, self._floor)   # entries at or below this are gone
        rows = db.execute("SELECT seq, topic, message FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                          (max(start, kept_from), max(1, int(limit)))).fetchall()
        first = db.execute("SELECT MIN(seq) FROM journal WHERE seq > ?", (kept_from,)).fetchone()[0]
        oldest = int(first) if first is not None else self._seq + 1
        return {
            "epoch": self.epoch,
            "last_seq": self._seq,
            # False when entries the caller asked for were already evicted (or the epoch changed).
            "complete": epoch == self.epoch and oldest <= start + 1,
            "messages": [[int(seq), str(topic), json.loads(message)] for seq, topic, message in rows],
        }
