"""The in-memory (and persisted) record of one DR event.

Overlap rule: at most one event is active at a time. A new ``event_id`` whose window
``[start, end)`` overlaps the window of a scheduled or active event is rejected (CONFLICT, naming
the other event): the backend is expected to modify (same event_id) or cancel the existing one.
Non-overlapping future events may be scheduled side by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ven_common.contract import EventState

from venagent.core.mv import MvAccumulator


@dataclass
class EventRecord:
    event_id: str
    correlation_id: str
    """Of the command that created the event (the report carries it)."""
    requested_shed_kw: float
    duration_sec: float
    start_ts: float
    end_ts: float
    state: EventState = EventState.SCHEDULED
    total_at_start: float | None = None
    """Measured total when the event became active; the hold target is this minus the request."""
    pre_state: dict[str, bool | None] = field(default_factory=dict)
    """Every circuit's enabled state when the event became active (restore returns to it)."""
    shed_order: list[str] = field(default_factory=list)
    """Circuits currently shed by this event, in the order they were shed."""
    kw_before: dict[str, float] = field(default_factory=dict)
    """kW each circuit drew just before we shed it (release decisions, M&V attribution)."""
    shed_at: dict[str, float] = field(default_factory=dict)
    last_change_ts: float | None = None
    ended_by: str | None = None
    ended_ts: float | None = None
    mv: MvAccumulator | None = None
    report: dict[str, Any] | None = None
    last_persist_ts: float | None = None

    def overlaps(self, start: float, end: float) -> bool:
        return start < self.end_ts and self.start_ts < end

    @property
    def target_kw(self) -> float | None:
        return None if self.total_at_start is None else self.total_at_start - self.requested_shed_kw

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["state"] = self.state.value
        doc["mv"] = None if self.mv is None else self.mv.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> EventRecord:
        fields = dict(doc)
        fields["state"] = EventState(fields["state"])
        mv = fields.pop("mv", None)
        record = cls(**fields)
        record.mv = None if mv is None else MvAccumulator.from_dict(mv)
        return record


def first_overlap(events: Iterable[EventRecord], start: float, end: float, exclude: str | None) -> EventRecord | None:
    for event in events:
        if event.event_id != exclude and event.state in (EventState.SCHEDULED, EventState.ACTIVE) and event.overlaps(start, end):
            return event
    return None
