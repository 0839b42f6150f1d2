"""Shared builders for the venagent.core unit tests (the default building of the seed)."""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from typing import Any

from venagent.core import CircuitSample, VenConfig, VenEngine, VenStore

THING = "volttron_thing"
T0 = 1_760_000_000.0


def circuit(name: str, kw: float, priority: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "device": "campus/building/sim",
        "enable_point": f"{name}_enabled",
        "power_point": f"{name}_kw",
        "rated_kw": kw,
        "priority": priority,
        **extra,
    }


def building_config(**overrides: Any) -> VenConfig:
    """HVAC 5.5 p3, Heater 2.5 p2, EV Charger 7.2 p1 (off), Water Heater 1.2 p1, Lighting 0.8 critical."""
    data: dict[str, Any] = {
        "circuits": [
            circuit("HVAC", 5.5, 3),
            circuit("Heater", 2.5, 2),
            circuit("EV Charger", 7.2, 1),
            circuit("Water Heater", 1.2, 1),
            circuit("Lighting", 0.8, 0, critical=True),
        ],
        "restore_jitter_sec": 0.0,
    }
    data.update(overrides)
    return VenConfig.from_dict(data)


BUILDING_STATE = {"HVAC": True, "Heater": True, "EV Charger": False, "Water Heater": True, "Lighting": True}


class Building:
    """A tiny simulated building: applies writes, reports kW = rated when on (meterless: total = sum)."""

    def __init__(self, config: VenConfig, state: Mapping[str, bool] | None = None) -> None:
        self.rated = {c.name: c.rated_kw for c in config.circuits}
        self.state = dict(state if state is not None else BUILDING_STATE)
        self.extra_kw: dict[str, float] = {}

    def apply(self, writes: Mapping[str, bool]) -> None:
        self.state.update({k: v for k, v in writes.items() if k in self.state})

    def samples(self) -> dict[str, CircuitSample]:
        return {
            n: CircuitSample(on, (self.rated[n] + self.extra_kw.get(n, 0.0)) if on else 0.0) for n, on in self.state.items()
        }

    def total(self) -> float:
        return sum(s.kw or 0.0 for s in self.samples().values())


def make_engine(config: VenConfig | None = None, store: VenStore | None = None, seed: int = 7) -> VenEngine:
    return VenEngine(config or building_config(), store or VenStore(":memory:"), random.Random(seed))


def event_cmd(
    event_id: str = "evt-1", shed_kw: Any = 2.0, duration_sec: Any = 300, cid: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "op": "event",
        "correlationId": cid or f"corr-{event_id}-{zlib.crc32(repr((shed_kw, duration_sec, sorted(extra.items()))).encode())}",
        "venId": THING,
        "event_id": event_id,
        "shed_kw": shed_kw,
        "duration_sec": duration_sec,
        **extra,
    }


def drive(engine: VenEngine, building: Building, start: float, stop: float, step: float = 1.0) -> list[tuple[float, Any]]:
    """Feed readings every ``step`` s, applying writes to the building; return (t, effects) with writes."""
    out = []
    t = start
    while t <= stop + 1e-9:
        fx = engine.on_readings(t, building.samples())
        building.apply(fx.writes)
        if fx.writes:
            out.append((t, fx))
        t += step
    return out
