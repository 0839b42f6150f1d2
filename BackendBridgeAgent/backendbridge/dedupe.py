"""Recognise QoS-1 redeliveries of commands (AWS may redeliver, also with a new packet id)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict


class RecentKeys:
    """A bounded LRU set: ``seen(key)`` answers "was it here already?" and records it."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return False

    def forget(self, key: str) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


def command_key(raw: bytes, correlation_id: str | None) -> str:
    """The identity of a command: its correlationId, else the hash of its bytes."""
    if correlation_id is not None:
        return "cid:" + correlation_id
    return "sha:" + hashlib.sha256(raw).hexdigest()


class CommandDeduper:
    """Counts and suppresses commands already forwarded to the VEN."""

    def __init__(self, capacity: int = 4096) -> None:
        self._recent = RecentKeys(capacity)
        self.duplicates = 0

    def is_duplicate(self, raw: bytes, correlation_id: str | None) -> bool:
        if self._recent.seen(command_key(raw, correlation_id)):
            self.duplicates += 1
            return True
        return False

    def forget(self, raw: bytes, correlation_id: str | None) -> None:
        """Allow a retry: used when the command could not be delivered to the VEN."""
        self._recent.forget(command_key(raw, correlation_id))
