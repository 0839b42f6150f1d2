"""Staggered restore to the pre-event state."""

from __future__ import annotations

import random

from core_support import T0, Building, building_config, circuit, event_cmd, make_engine
from ven_common.contract import BusTopics

from venagent.core.restore import plan_restore


def test_plan_staggers_in_reverse_shed_order_with_seeded_jitter() -> None:
    probe = random.Random(3)
    jitters = [probe.uniform(0, 1.0) for _ in range(3)]
    steps = plan_restore(
        end_ts=100.0, shed_order=["low", "mid", "high"], pre_state={"low": True, "mid": True, "high": True},
        kw_before={}, off_ready_at=lambda n: None, spacing_sec=2.0, jitter_sec=1.0, rng=random.Random(3), event_id="e",
    )
    assert [s.name for s in steps] == ["high", "mid", "low"]  # most important first
    assert [s.due_ts for s in steps] == [100.0 + jitters[0], 102.0 + jitters[1], 104.0 + jitters[2]]
    assert all(0 < j < 1.0 for j in jitters)


def test_plan_skips_circuits_that_were_off_and_respects_min_off() -> None:
    steps = plan_restore(
        end_ts=100.0, shed_order=["a", "b", "c"], pre_state={"a": True, "b": False, "c": None},
        kw_before={"a": 1.0}, off_ready_at=lambda n: 150.0 if n == "a" else None,
        spacing_sec=2.0, jitter_sec=0.0, rng=random.Random(0), event_id=None,
    )
    assert [(s.name, s.due_ts) for s in steps] == [("c", 100.0), ("a", 150.0)]


def test_engine_restores_staggered_from_tick_and_only_what_it_shed() -> None:
    cfg = building_config(restore_spacing_sec=2.0, restore_jitter_sec=0.0)
    engine = make_engine(cfg)
    building = Building(cfg)
    engine.on_readings(T0, building.samples())
    _, fx = engine.on_command(T0, event_cmd("e", 9.0, 100))
    building.apply(fx.writes)
    assert fx.writes == {"Water Heater": False, "Heater": False, "HVAC": False}
    # shed order: Water Heater, Heater, HVAC → restore HVAC at end, Heater +2 s, Water Heater +4 s.
    seen = {}
    for t in [T0 + 99, T0 + 100, T0 + 101, T0 + 102, T0 + 103, T0 + 104, T0 + 110]:
        fx = engine.tick(t)
        for name, value in fx.writes.items():
            assert value is True
            seen[name] = t
        for rec in fx.of_topic(BusTopics.ACTUATION):
            assert rec["reason"] == "restore" and rec["event_id"] == "e"
    assert seen == {"HVAC": T0 + 100, "Heater": T0 + 102, "Water Heater": T0 + 104}
    assert "EV Charger" not in seen and "Lighting" not in seen  # never turn on what we did not turn off


def test_circuit_off_before_event_stays_off_after_restore() -> None:
    circuits = [circuit("A", 2.0, 0), circuit("B", 2.0, 1)]
    cfg = building_config(circuits=circuits)
    engine = make_engine(cfg)
    building = Building(cfg, {"A": False, "B": True})
    engine.on_readings(T0, building.samples())
    _, fx = engine.on_command(T0, event_cmd("e", 1.0, 600))
    building.apply(fx.writes)
    assert fx.writes == {"B": False}
    # Someone turns A on mid-event; the hold loop then sheds it (its pre-event state was off).
    building.state["A"] = True
    building.extra_kw["A"] = 1.0
    fx = engine.on_readings(T0 + 10, building.samples())
    assert fx.writes == {"A": False}
    building.apply(fx.writes)
    _, fx = engine.on_command(T0 + 20, {"op": "restore", "correlationId": "r1"})
    later = [engine.tick(T0 + 20 + dt) for dt in range(0, 30)]
    restored = {n for f in [fx, *later] for n in f.writes}
    assert restored == {"B"}
