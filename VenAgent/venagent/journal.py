"""Numbered memory of everything the VenAgent published on the bus.

VOLTTRON pubsub does not queue for absent subscribers: whatever the VEN publishes while the
bridge is down (killed, restarting) would be lost. Every message therefore carries
``(vepoch, vseq)`` in its headers, and the bridge asks for the ones it missed over RPC
(``get_journal_since``). ``vepoch`` changes when the VenAgent restarts, which tells the bridge
that numbering started again.
"""

from __future__ import annotations

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
    def __init__(self, capacity: int = 7200, epoch: str | None = None) -> None:
        # One hour of 1 Hz metering plus the events around it.
        self.epoch = epoch or uuid.uuid4().hex
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._seq = 0

    @property
    def last_seq(self) -> int:
        return self._seq

    def append(self, topic: str, message: Any) -> int:
        self._seq += 1
        self._entries.append(JournalEntry(self._seq, topic, message))
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
