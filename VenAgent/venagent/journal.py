"""Numbered memory of everything the VenAgent published on the bus.

VOLTTRON pubsub does not queue for absent subscribers: whatever the VEN publishes while the
bridge is down (killed, restarting) would be lost. Every message therefore carries
``(vepoch, vseq)`` in its headers, and the bridge asks for the ones it missed over RPC
(``get_journal_since``). With a file the journal survives VenAgent restarts (same epoch,
numbering goes on), so even a VEN restart while the bridge is down loses nothing; ``vepoch``
changes only when the journal file is new, which tells the bridge that numbering started again.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    topic: str
    message: Any


class Journal:
    def __init__(self, capacity: int = 7200, epoch: str | None = None, path: str | None = None) -> None:
        # One hour of 1 Hz metering plus the events around it.
        self.capacity = capacity
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._seq = 0
        self._db: sqlite3.Connection | None = None
        self.epoch = epoch or uuid.uuid4().hex
        if path is not None:
            self._open(path, epoch)

    def _open(self, path: str, epoch: str | None) -> None:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS journal_meta (id INTEGER PRIMARY KEY CHECK (id = 1), epoch TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, message TEXT NOT NULL)")
        row = db.execute("SELECT epoch FROM journal_meta WHERE id = 1").fetchone()
        if row is None:
            db.execute("INSERT INTO journal_meta (id, epoch) VALUES (1, ?)", (self.epoch,))
        else:
            self.epoch = epoch or str(row[0])
        rows = db.execute("SELECT seq, topic, message FROM journal ORDER BY seq DESC LIMIT ?",
                          (self.capacity,)).fetchall()
        for seq, topic, message in reversed(rows):
            self._entries.append(JournalEntry(int(seq), str(topic), json.loads(message)))
        last = db.execute("SELECT MAX(seq) FROM journal").fetchone()[0]
        self._seq = int(last or 0)
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def last_seq(self) -> int:
        return self._seq

    def append(self, topic: str, message: Any) -> int:
        self._seq += 1
        self._entries.append(JournalEntry(self._seq, topic, message))
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO journal (seq, topic, message) VALUES (?, ?, ?)",
                             (self._seq, topic, json.dumps(message, default=str)))
            if self._seq % 500 == 0:  # keep the file bounded like the memory copy
                self._db.execute("DELETE FROM journal WHERE seq <= ?", (self._seq - self.capacity,))
        return self._seq

    def since(self, epoch: str | None, after_seq: int, limit: int = 2000) -> dict[str, Any]:
        """Entries after ``after_seq`` of ``epoch``; a different epoch means "from the start"."""
        start = after_seq if epoch == self.epoch else 0
        oldest = self._entries[0].seq if self._entries else self._seq + 1
        picked = [e for e in self._entries if e.seq > start][: max(1, int(limit))]
        return {
            "epoch": self.epoch,
            "last_seq": self._seq,
            # False when entries the caller asked for were already evicted (or the epoch changed).
            "complete": epoch == self.epoch and oldest <= start + 1,
            "messages": [[e.seq, e.topic, e.message] for e in picked],
        }
