"""What a core call asks the shell to do: driver writes and bus messages.

The core never performs I/O itself; it returns :class:`Effects` and the shell executes them.
``writes`` is final per circuit (a later write in the same call wins), while every batch is
also described by an actuation record so the bus shows *why* each write happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ven_common.contract import Ack, BusTopics


@dataclass(frozen=True)
class Effects:
    writes: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    """circuit name -> enabled; the shell batches per device."""
    messages: tuple[tuple[str, dict[str, Any]], ...] = ()
    """(bus topic, message) to publish on the VOLTTRON bus, in order."""

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.messages]

    def of_topic(self, topic: str) -> list[dict[str, Any]]:
        return [msg for t, msg in self.messages if t == topic]


class EffectsBuilder:
    """Accumulates the effects of one public call."""

    def __init__(self) -> None:
        self._writes: dict[str, bool] = {}
        self._messages: list[tuple[str, dict[str, Any]]] = []

    def write(self, now: float, writes: Mapping[str, bool], reason: str, event_id: str | None) -> None:
        if not writes:
            return
        self._writes.update(writes)
        self.publish(
            BusTopics.ACTUATION,
            {"ts": now, "writes": dict(writes), "reason": reason, "event_id": event_id},
        )

    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        # A plain dict on the bus, whatever typed shape (Ack, Reading) the core built it as.
        self._messages.append((topic, dict(message)))

    def build(self) -> Effects:
        return Effects(MappingProxyType(dict(self._writes)), tuple(self._messages))


@dataclass(frozen=True)
class PendingCommand:
    """A decided command whose writes the shell has yet to perform (:meth:`VenEngine.begin_command
    <venagent.core.engine.VenEngine.begin_command>`)."""

    ack: Ack
    effects: Effects
    """The writes to perform and the bus messages (the ack comes with ``VenEngine.complete_command``)."""
    correlation_id: str | None = None
    fingerprint: str | None = None
    replayed: bool = False
    """The stored ack of an earlier identical command: nothing is decided, stored or written."""
    store: bool = False
    stale_kinds: tuple[str, ...] = field(default=())
