"""Baselines: what the building would have drawn without the event.

A :class:`Baseline` is fed every total-power reading and answers two questions: the current
value (shown as ``baseline_kw`` in status/metering) and the value just before a given time (the
M&V baseline frozen when an event starts). Two meter-before flavours are implemented:

* :class:`RollingMeanBaseline` — mean of the last N totals: the seed's "average of last 60 samples".
* :class:`MeterBeforeBaseline` — mean of totals in a time window before ``ts``: the seed's
  "5-minute average before event", used for M&V.

Seam for day-matching: programs such as CAISO 10-in-10 or PJM "High 4 of 5" use an "X of Y"
baseline — per interval-of-day, the mean of the X highest (or all) of the Y most recent eligible
non-event days of the same type, times a same-day adjustment from the hours before the event,
clamped (typically to [0.8, 1.2]). That needs days of interval history, persisted, plus a
calendar of event/outage days to exclude. :class:`DayMatchingBaseline` documents the shape; it
is deliberately not implemented, and nothing constructs it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

# Bound memory even if a device publishes far faster than configured.
_MAX_WINDOW_SAMPLES = 100_000


@runtime_checkable
class Baseline(Protocol):
    def add(self, now: float, kw: float) -> None:
        """Record a total-power reading taken at ``now``."""

    def value(self, now: float) -> float | None:
        """The baseline at ``now`` (None until there is any reading)."""

    def before(self, ts: float) -> float | None:
        """The baseline from readings strictly before ``ts`` (None if none is available)."""


class RollingMeanBaseline:
    """Mean of the last ``samples`` readings, regardless of their spacing."""

    def __init__(self, samples: int) -> None:
        self._values: deque[tuple[float, float]] = deque(maxlen=samples)

    def add(self, now: float, kw: float) -> None:
        self._values.append((now, kw))

    def value(self, now: float) -> float | None:
        return math.fsum(kw for _, kw in self._values) / len(self._values) if self._values else None

    def resized(self, samples: int) -> RollingMeanBaseline:
        """A copy keeping the newest readings (reconfiguration must not reset the baseline)."""
        copy = RollingMeanBaseline(samples)
        copy._values.extend(self._values)
        return copy

    def before(self, ts: float) -> float | None:
        kept = [kw for t, kw in self._values if t < ts]
        return math.fsum(kept) / len(kept) if kept else None


class MeterBeforeBaseline:
    """Mean of readings in ``[ts − window_sec, ts)``.

    When the window holds nothing (the VEN just started) it falls back to the latest reading
    before ``ts``, so an event that starts right after boot still gets a baseline.
    """

    def __init__(self, window_sec: float) -> None:
        self.window_sec = window_sec
        self._values: deque[tuple[float, float]] = deque(maxlen=_MAX_WINDOW_SAMPLES)

    def add(self, now: float, kw: float) -> None:
        self._values.append((now, kw))
        # Keep one reading older than the window: it is the fallback for a later before().
        while len(self._values) > 1 and self._values[1][0] < now - self.window_sec:
            self._values.popleft()

    def value(self, now: float) -> float | None:
        return self._mean(now - self.window_sec, lambda t: t <= now)

    def before(self, ts: float) -> float | None:
        return self._mean(ts - self.window_sec, lambda t: t < ts)

    def _mean(self, window_start: float, in_range: Callable[[float], bool]) -> float | None:
        earlier = [(t, kw) for t, kw in self._values if in_range(t)]
        inside = [kw for t, kw in earlier if t >= window_start]
        if inside:
            return math.fsum(inside) / len(inside)
        return earlier[-1][1] if earlier else None


class DayMatchingBaseline:
    """Placeholder for an "X of Y" day-matching baseline with a capped same-day adjustment.

    Intended contract (to satisfy :class:`Baseline`): ``add`` buckets readings by day and
    interval-of-day into a persisted history; ``before(ts)`` returns, for ts's interval, the mean
    of the top ``x`` of the last ``y`` eligible days (same day type, no event or outage), scaled by
    ``clamp(mean(actual, adj window) / mean(baseline, adj window), 1 − cap, 1 + cap)`` where the
    adjustment window is a few hours before the event. Not implemented: construction raises.
    """

    def __init__(self, x: int, y: int, adjustment_cap: float = 0.2) -> None:
        raise NotImplementedError("day-matching baseline is a documented seam, not an implementation")
