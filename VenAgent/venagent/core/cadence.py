"""When to emit a metering reading, given readings that arrive on the driver's own clock.

The VEN meters from the driver's publishes: every poll period one publish per device, each
reaching the VEN some delay later. Gating on "at least the interval since the last reading"
skips a reading whenever one publish comes in a little late and the next on time (1.85 s between
two readings for one 150 ms hiccup). Instead readings are due on a grid of slots one interval
apart, anchored on the first arrival: the first arrival from ``EARLY_SEC`` before a slot on is
emitted, and no two readings come closer than half an interval. So a publish that is late costs
nothing as long as the next one is not early by more than ``EARLY_SEC``; several devices
publishing together still give one reading per slot; an interval that is not a multiple of the
poll period keeps its average rate; and after a stall (or a clock stepped back) the grid starts
again from the next arrival instead of emitting a burst.
"""

from __future__ import annotations

EARLY_SEC = 0.5
"""How early against the grid an arrival may come: delivery delays on the bus stay well below."""


class MeteringCadence:
    def __init__(self, interval_sec: float) -> None:
        self._interval_sec = interval_sec
        self._next_slot: float | None = None
        self._last_emit: float | None = None

    @property
    def interval_sec(self) -> float:
        return self._interval_sec

    @interval_sec.setter
    def interval_sec(self, value: float) -> None:
        """A new interval counts from the last reading (a live shadow or config change)."""
        self._interval_sec = value
        if self._last_emit is not None:
            self._next_slot = self._last_emit + value

    def earliest(self) -> float | None:
        """The first moment a reading may be emitted (None: at once): for a reading that is ready
        before its slot (the VEN's read-back of a switch), instead of waiting for the next arrival."""
        if self._next_slot is None or self._last_emit is None:
            return None
        interval = self._interval_sec
        return max(self._next_slot - min(EARLY_SEC, 0.5 * interval), self._last_emit + 0.5 * interval)

    def wait_sec(self, now: float) -> float:
        """How long a reading that is ready now waits for its slot (0: emit at once), with a 5 ms margin so
        that it lands inside the slot, not at its edge."""
        due = self.earliest()
        return 0.0 if due is None else max(0.0, due - now) + 0.005

    def arrival(self, now: float) -> bool:
        """A reading arrived at ``now``: True when it is to be emitted as a metering reading."""
        interval = self._interval_sec
        if self._last_emit is not None and now < self._last_emit:
            self._next_slot = self._last_emit = None  # the clock went back: start again
        if self._next_slot is not None and self._last_emit is not None:
            early = min(EARLY_SEC, 0.5 * interval)
            if now < self._next_slot - early or now - self._last_emit < 0.5 * interval:
                return False
            self._next_slot += interval
            if self._next_slot <= now:  # fell behind by a whole slot (stall): re-anchor
                self._next_slot = now + interval
        else:
            self._next_slot = now + interval
        self._last_emit = now
        return True
