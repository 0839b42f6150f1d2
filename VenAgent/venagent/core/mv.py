"""Measurement & verification of one event: delivered energy and who delivered it.

Shed at an instant is ``baseline_kw − total_kw`` (the seed's "baseline − current"), where the
baseline is frozen when the event starts. It is integrated with the trapezoid rule between
readings; after the last reading the value is held until the event ends. Time the VEN was down
is a gap (:meth:`MvAccumulator.gap`): it is not integrated, because we did not see it.

Per circuit we keep the kW it drew just before we shed it, time-weighted over the time it stayed
shed: the expected contribution, the only attribution possible with one meter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CircuitMv:
    shed_sec: float = 0.0
    kw_sec: float = 0.0
    shed_since: float | None = None
    kw_before: float = 0.0

    def close(self, now: float) -> None:
        if self.shed_since is not None:
            span = max(0.0, now - self.shed_since)
            self.shed_sec += span
            self.kw_sec += span * self.kw_before
            self.shed_since = None


@dataclass
class MvAccumulator:
    baseline_kw: float
    start_ts: float
    energy_kw_sec: float = 0.0
    covered_sec: float = 0.0
    last_ts: float | None = None
    last_shed_kw: float | None = None
    circuits: dict[str, CircuitMv] = field(default_factory=dict)

    def add_sample(self, now: float, total_kw: float) -> float:
        """Integrate up to ``now``; return the instantaneous shed (for metering)."""
        shed = self.baseline_kw - total_kw
        if self.last_ts is not None and self.last_shed_kw is not None:
            if now < self.last_ts:
                return shed  # out-of-order publish: integrating backwards would subtract energy
            dt = now - self.last_ts
            self.energy_kw_sec += 0.5 * (self.last_shed_kw + shed) * dt
            self.covered_sec += dt
        self.last_ts, self.last_shed_kw = now, shed
        return shed

    def gap(self) -> None:
        """Readings stopped (restart): do not bridge the hole with a trapezoid."""
        self.last_ts = None
        self.last_shed_kw = None

    def circuit_shed(self, now: float, name: str, kw_before: float) -> None:
        entry = self.circuits.setdefault(name, CircuitMv())
        entry.close(now)
        entry.kw_before = kw_before
        entry.shed_since = now

    def circuit_released(self, now: float, name: str) -> None:
        entry = self.circuits.get(name)
        if entry is not None:
            entry.close(now)

    def so_far(self, now: float) -> dict[str, float | None]:
        """The running figures at ``now``, by the same rules as :meth:`finish` (the last reading's shed held up to
        ``now``), without closing anything: the one M&V the status, the page and the report share."""
        energy, covered = self.energy_kw_sec, self.covered_sec
        if self.last_ts is not None and self.last_shed_kw is not None and now > self.last_ts:
            energy += self.last_shed_kw * (now - self.last_ts)
            covered += now - self.last_ts
        return {
            "baseline_kw": round(self.baseline_kw, 3),
            "mean_shed_kw": round(energy / covered, 3) if covered > 0 else None,
            "delivered_kwh": round(energy / 3600.0, 4),
            "covered_sec": round(covered, 1),
        }

    def finish(self, end_ts: float) -> dict[str, Any]:
        """Close the books at ``end_ts`` and return the report's M&V fields."""
        if self.last_ts is not None and self.last_shed_kw is not None and end_ts > self.last_ts:
            dt = end_ts - self.last_ts
            self.energy_kw_sec += self.last_shed_kw * dt
            self.covered_sec += dt
            self.last_ts = end_ts
        for entry in self.circuits.values():
            entry.close(end_ts)
        mean = self.energy_kw_sec / self.covered_sec if self.covered_sec > 0 else 0.0
        return {
            "start_ts": self.start_ts,
            "baseline_kw": self.baseline_kw,
            "mean_actual_shed_kw": mean,
            "delivered_kwh": self.energy_kw_sec / 3600.0,
            "duration_sec": max(0.0, end_ts - self.start_ts),
            "circuits": [
                {
                    "name": name,
                    "shed_sec": entry.shed_sec,
                    "mean_kw": entry.kw_sec / entry.shed_sec if entry.shed_sec > 0 else entry.kw_before,
                }
                for name, entry in self.circuits.items()
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MvAccumulator:
        circuits = {name: CircuitMv(**entry) for name, entry in data.get("circuits", {}).items()}
        fields = {k: v for k, v in data.items() if k != "circuits"}
        return cls(**fields, circuits=circuits)
