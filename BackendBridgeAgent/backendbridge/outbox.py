"""Durable store-and-forward queue (SQLite, WAL) between the bus and the cloud link.

* ``seq`` comes from an AUTOINCREMENT key, so it never goes backwards, not after deletes and
  not after a restart: the backend can use it to order and de-duplicate.
* A row is deleted only after the broker's PUBACK (:meth:`Outbox.ack`).
* The queue is bounded, in messages and in bytes of payload. When full, the oldest rows are
  dropped (``drop_oldest``), counted in a persisted counter and reported, because an unbounded
  queue on a VEN that is offline for weeks would fill the disk instead (a 500-circuit campus's
  readings are ~30 KB each: 200,000 of them would be 6 GB).
* Every write is one transaction; with WAL a committed row survives SIGKILL of the process.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    stream_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    moved REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS source_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT NOT NULL,
    seq INTEGER NOT NULL
);
"""

# Counters persisted across restarts.
DROPPED = "dropped"
DEAD_LETTER = "dead_letter"
SUPERSEDED = "superseded"
_DEAD_LETTER_KEEP = 1000
# Dropping for size goes this far below the byte bound, so a full queue does not scan for the
# oldest rows on every enqueue.
_BYTES_HEADROOM = 0.95


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    kind: str
    topic: str
    payload: dict[str, Any]
    created: float
    # Contiguous per MQTT topic: what the backend sees as "seq", so a hole means a lost message
    # (``seq`` above is the queue's own key, shared by every topic, superseded shadows included).
    stream_seq: int = 0


class Outbox:
    """A bounded FIFO of JSON payloads keyed by a monotonically increasing ``seq``."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_messages: int = 200_000,
        max_bytes: int = 512 * 1024 * 1024,
        drop_policy: Literal["drop_oldest"] = "drop_oldest",
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if drop_policy != "drop_oldest":
            raise ValueError(f"unsupported drop policy {drop_policy!r}")
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.max_bytes = max_bytes
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self._clock = clock
        # The agent uses it from one thread; tests and benchmarks may not. Statements of one
        # transaction must not interleave with another thread's, hence one lock per outbox.
        self._lock = threading.RLock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so each call is one transaction.
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "stream_seq" not in columns:  # an outbox written by an older version
            self._db.execute("ALTER TABLE outbox ADD COLUMN stream_seq INTEGER NOT NULL DEFAULT 0")
        # COUNT(*) is O(n); keep the depth in memory (single writer) and count once here.
        self._depth: int = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._bytes: int = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()[0]

    # -- writing -----------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        topic: str,
        payload: Mapping[str, Any],
        *,
        supersede: bool = False,
        cursor: tuple[str, int] | None = None,
    ) -> int:
        """Store one message; returns its ``seq``.

        ``supersede`` first deletes queued rows of the same kind and topic: a shadow update
        replaces the previous one instead of replaying every stale state after an outage.
        ``cursor`` records, in the same transaction, the VEN journal position this message came
        from, so a SIGKILL can neither lose nor duplicate it on catch-up.
        """
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
        now = self._clock()
        size = len(text.encode())
        with self._tx() as db:
            if supersede:
                gone = self._delete(db, "kind = ? AND topic = ?", (kind, topic))
                self._bump(db, SUPERSEDED, gone)
            overflow = self._depth + 1 - self.max_messages
            if overflow > 0:
                self._bump(db, DROPPED, self._delete(db, "seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                                                     (overflow,)))
            if self._bytes + size > self.max_bytes and self._depth:
                # The oldest rows whose payloads free enough room (down to the headroom).
                need = self._bytes + size - int(self.max_bytes * _BYTES_HEADROOM)
                row = db.execute("SELECT seq FROM (SELECT seq, SUM(LENGTH(payload)) OVER (ORDER BY seq) AS run "
                                 "FROM outbox) WHERE run >= ? ORDER BY seq LIMIT 1", (need,)).fetchone()
                last = row[0] if row is not None else self.last_seq()
                self._bump(db, DROPPED, self._delete(db, "seq <= ?", (last,)))
            stream_seq = self._next_stream_seq(db, topic)
            cur = db.execute(
                "INSERT INTO outbox (kind, topic, payload, created, stream_seq) VALUES (?, ?, ?, ?, ?)",
                (kind, topic, text, now, stream_seq),
            )
            self._depth += 1
            self._bytes += size
            seq = cur.lastrowid
            if cursor is not None:
                self._write_cursor(db, cursor)
        assert seq is not None
        return int(seq)

    def _next_stream_seq(self, db: sqlite3.Connection, topic: str) -> int:
        name = f"stream:{topic}"
        self._bump(db, name, 1)
        return int(db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    def set_cursor(self, cursor: tuple[str, int]) -> None:
        """Advance the journal position past a message that was not queued (not forwarded)."""
        with self._tx() as db:
            self._write_cursor(db, cursor)

    def cursor(self) -> tuple[str, int] | None:
        with self._lock:
            row = self._db.execute("SELECT epoch, seq FROM source_cursor WHERE id = 1").fetchone()
        return (str(row[0]), int(row[1])) if row else None

    @staticmethod
    def _write_cursor(db: sqlite3.Connection, cursor: tuple[str, int]) -> None:
        db.execute(
            "INSERT INTO source_cursor (id, epoch, seq) VALUES (1, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq",
            (cursor[0], int(cursor[1])),
        )

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove PUBACKed rows; unknown seqs (dropped meanwhile) are ignored."""
        seq_list = list(seqs)
        if not seq_list:
            return 0
        gone = 0
        with self._tx() as db:
            for start in range(0, len(seq_list), 500):   # SQLite's bound on variables per statement
                chunk = seq_list[start:start + 500]
                gone += self._delete(db, f"seq IN ({','.join('?' * len(chunk))})", chunk)
        return gone

    def dead_letter(self, seqs: Iterable[int], reason: str) -> int:
        """Move rows that can never be published out of the queue (counted, last 1000 kept)."""
        seq_list = list(seqs)
        now = self._clock()
        moved = 0
        with self._tx() as db:
            for seq in seq_list:
                moved += db.execute(
                    "INSERT OR REPLACE INTO dead_letter (seq, kind, topic, payload, created, moved, reason) "
                    "SELECT seq, kind, topic, payload, created, ?, ? FROM outbox WHERE seq = ?",
                    (now, reason[:500], seq),
                ).rowcount
                self._delete(db, "seq = ?", (seq,))
            self._bump(db, DEAD_LETTER, moved)
            db.execute(
                "DELETE FROM dead_letter WHERE seq NOT IN "
                "(SELECT seq FROM dead_letter ORDER BY seq DESC LIMIT ?)",
                (_DEAD_LETTER_KEEP,),
            )
        return moved

    # -- reading -----------------------------------------------------------------------

    def peek(self, limit: int, after_seq: int = 0) -> list[OutboxItem]:
        """The oldest ``limit`` rows with ``seq > after_seq``, in seq order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, topic, payload, created, stream_seq FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    def depth(self) -> int:
        return self._depth

    def size_bytes(self) -> int:
        """Bytes of payload queued."""
        return self._bytes

    def oldest_age(self, now: float | None = None) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT created FROM outbox ORDER BY seq LIMIT 1").fetchone()
        if row is None:
            return None
        return max(0.0, (self._clock() if now is None else now) - row[0])

    def last_seq(self) -> int:
        """The highest seq ever assigned (survives deletes: sqlite_sequence)."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def counter(self, name: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def counters(self) -> dict[str, int]:
        out = {DROPPED: 0, DEAD_LETTER: 0, SUPERSEDED: 0}
        with self._lock:
            out.update({n: int(v) for n, v in self._db.execute(
                "SELECT name, value FROM counters WHERE name NOT LIKE 'stream:%'")})
        return out

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, topic, created, moved, reason FROM dead_letter ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("seq", "kind", "topic", "created", "moved", "reason")
        return [dict(zip(keys, r, strict=False)) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- internals ---------------------------------------------------------------------

    def _delete(self, db: sqlite3.Connection, where: str, params: Iterable[Any]) -> int:
        """Delete the rows matching ``where``, keeping the depth and byte count; returns how many."""
        sizes = db.execute(f"DELETE FROM outbox WHERE {where} RETURNING LENGTH(payload)", tuple(params)).fetchall()
        self._depth -= len(sizes)
        self._bytes -= sum(int(s[0]) for s in sizes)
        return len(sizes)

    def _bump(self, db: sqlite3.Connection, name: str, by: int) -> None:
        if by:
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; on error ROLLBACK and resync the in-memory depth."""
        with self._lock:
            depth_before, bytes_before = self._depth, self._bytes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._depth, self._bytes = depth_before, bytes_before
                raise
            self._db.execute("COMMIT")
