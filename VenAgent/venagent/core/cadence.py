"""When to emit a metering reading, given readings that arrive on the driver's own clock.

The VEN meters from the driver's publishes, which arrive every ``P`` seconds with some jitter;
the configured metering interval ``I`` is usually a multiple of ``P`` (1 s and 1 s by default).
Gating on "at least ``I`` since the last reading" skips a reading whenever one publish comes in
a little late and the next on time (1.85 s between two readings for one 150 ms hiccup). So the
gate is ``I − P/2``: any arrival jitter below half a period passes, and with ``I = 5·P`` every
fifth publish is still the one that is emitted. ``P`` is learnt from the arrivals (mean of the
recent gaps), so nothing needs to know the driver's poll interval.
"""

from __future__ import annotations

from collections import deque
from statistics import fmean


class MeteringCadence:
    GAPS_KEPT = 9

    def __init__(self, interval_sec: float) -> None:
        self.interval_sec = interval_sec
        self._last_arrival: float | None = None
        self._gaps: deque[float] = deque(maxlen=self.GAPS_KEPT)
        self._last_emit: float | None = None

    @property
    def arrival_period_sec(self) -> float | None:
        """Mean of the recent arrival gaps: the delays telescope (``(a_n − a_0)/n = P + (d_n − d_0)/n``),
        where a median of alternating late/on-time gaps can sit well below ``P``. None until
        there are three gaps (one short gap would otherwise pass for the period)."""
        return fmean(self._gaps) if len(self._gaps) >= 3 else None

    def min_gap_sec(self) -> float:
        period = self.arrival_period_sec
        # Unknown period: assume publishes as slow as the interval (lenient for the first few).
        return self.interval_sec - 0.5 * min(period if period is not None else self.interval_sec, self.interval_sec)

    def arrival(self, now: float) -> bool:
        """A reading arrived at ``now``: True when it is to be emitted as a metering reading."""
        if self._last_arrival is not None and now > self._last_arrival:
            self._gaps.append(now - self._last_arrival)
        self._last_arrival = now
        if self._last_emit is not None and now - self._last_emit < self.min_gap_sec():
            return False
        self._last_emit = now
        return True
