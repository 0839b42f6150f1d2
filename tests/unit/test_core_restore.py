"""Staggered restore to the pre-event state."""

from __future__ import annotations

import itertools
import random

from core_support import T0, Building, building_config, circuit, event_cmd, make_engine
from hypothesis import given, settings
from hypothesis import strategies as st

from ven_common.contract import BusTopics

from venagent.core.engine import VenEngine
from venagent.core.restore import RestoreStep, plan_restore, take_due


def test_plan_staggers_in_reverse_shed_order_with_one_jitter_for_the_whole_plan() -> None:
    offset = random.Random(3).uniform(0, 1.0)
    steps = plan_restore(
        end_ts=100.0, shed_order=["low", "mid", "high"], pre_state={"low": True, "mid": True, "high": True},
        kw_before={}, off_ready_at=lambda n: None, spacing_sec=2.0, jitter_sec=1.0, rng=random.Random(3), event_id="e",
    )
    assert [s.name for s in steps] == ["high", "mid", "low"]  # most important first
    assert [s.due_ts for s in steps] == [100.0 + offset, 102.0 + offset, 104.0 + offset]
    assert 0 < offset < 1.0


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    spacing=st.floats(0.0, 10.0),
    jitter=st.floats(0.0, 5.0),
    ready=st.lists(st.one_of(st.none(), st.floats(90.0, 130.0)), min_size=1, max_size=8),
)
def test_planned_steps_keep_their_slot_unless_min_off_holds_them(seed: int, spacing: float, jitter: float,
                                                                   ready: list) -> None:
    names = [f"c{i}" for i in range(len(ready))]
    ready_at = dict(zip(names, ready, strict=False))
    offset = random.Random(seed).uniform(0.0, jitter) if jitter > 0 else 0.0
    steps = plan_restore(
        end_ts=100.0, shed_order=names, pre_state={}, kw_before={}, off_ready_at=ready_at.get,
        spacing_sec=spacing, jitter_sec=jitter, rng=random.Random(seed), event_id=None,
    )
    assert [s.name for s in steps] == names[::-1]
    for i, step in enumerate(steps):
        slot = 100.0 + offset + i * spacing
        assert step.due_ts == (slot if ready_at[step.name] is None else max(slot, ready_at[step.name]))


def test_a_circuit_held_by_min_off_does_not_hold_back_the_others() -> None:
    steps = plan_restore(
        end_ts=60.0, shed_order=["water", "heater", "hvac"], pre_state={}, kw_before={},
        off_ready_at=lambda n: 600.0 if n == "hvac" else None, spacing_sec=2.0, jitter_sec=0.0,
        rng=random.Random(0), event_id="e",
    )
    assert [(s.name, s.due_ts) for s in steps] == [("hvac", 600.0), ("heater", 62.0), ("water", 64.0)]


def test_a_plan_added_after_a_switch_keeps_its_distance() -> None:
    late = [RestoreStep("b", 10.0, "e2")]
    blocked = take_due(late, 11.0, spacing_sec=2.0, writable=lambda n: True, last_switch_ts=10.0)
    assert blocked.switch_on is None and blocked.pending == tuple(late)
    assert take_due(late, 12.0, spacing_sec=2.0, writable=lambda n: True, last_switch_ts=10.0).switch_on == late[0]
    # A clock stepped back behind the last switch does not block restores.
    assert take_due(late, 11.0, spacing_sec=2.0, writable=lambda n: True, last_switch_ts=500.0).switch_on == late[0]


@settings(max_examples=300, deadline=None)
@given(
    dues=st.lists(st.floats(0.0, 20.0), min_size=1, max_size=8),
    ticks=st.lists(st.floats(0.01, 3.0), min_size=1, max_size=60),
    blocked=st.sets(st.integers(0, 7)),
)
def test_switchings_are_spaced_whatever_the_timer_does(dues: list, ticks: list, blocked: set) -> None:
    """Steps that fall due together (late timer, restart, two events ending) still come back one
    by one, ``spacing`` apart; steps no longer ours are dropped, never lost nor switched."""
    spacing = 2.0
    steps = [RestoreStep(f"c{i}", d, None) for i, d in enumerate(dues)]
    writable = lambda name: int(name[1:]) not in blocked  # noqa: E731
    now, switched, dropped = 0.0, [], []
    for dt in [*ticks, *([spacing] * (len(steps) + 1))]:  # the tail lets everything finish
        now += dt
        round_ = take_due(steps, now, spacing_sec=spacing, writable=writable)
        if round_.switch_on is not None:
            assert round_.switch_on.due_ts <= now
            switched.append((now, round_.switch_on.name))
        dropped += [s.name for s in round_.dropped]
        steps = list(round_.pending)
    # Ticks end far beyond the last due time, so every step ended one way or the other.
    if now > max(dues) + spacing * len(dues):
        assert not steps
    assert sorted([n for _, n in switched] + dropped + [s.name for s in steps]) == sorted(f"c{i}" for i in range(len(dues)))
    assert not {n for _, n in switched} & {f"c{i}" for i in blocked}
    times = [t for t, _ in switched]
    assert all(b - a >= spacing - 1e-9 for a, b in itertools.pairwise(times))


def test_overdue_steps_come_back_one_per_spacing_not_all_at_once() -> None:
    steps = [RestoreStep("a", 10.0, "e"), RestoreStep("b", 12.0, "e"), RestoreStep("c", 14.0, "e")]
    round_ = take_due(steps, 100.0, spacing_sec=2.0, writable=lambda n: True)  # e.g. the VEN was down
    assert round_.switch_on == steps[0]
    assert [(s.name, s.due_ts) for s in round_.pending] == [("b", 102.0), ("c", 102.0)]
    assert take_due(round_.pending, 101.9, spacing_sec=2.0, writable=lambda n: True).switch_on is None


def test_plan_skips_circuits_that_were_off_and_respects_min_off() -> None:
    steps = plan_restore(
        end_ts=100.0, shed_order=["a", "b", "c"], pre_state={"a": True, "b": False, "c": None},
        kw_before={"a": 1.0}, off_ready_at=lambda n: 150.0 if n == "a" else None,
        spacing_sec=2.0, jitter_sec=0.0, rng=random.Random(0), event_id=None,
    )
    assert [(s.name, s.due_ts) for s in steps] == [("c", 100.0), ("a", 150.0)]


def _three_shed(event_id: str, duration_sec: float) -> tuple[VenEngine, Building]:
    """The default building, restores 2 s apart without jitter, an event that sheds three circuits."""
    cfg = building_config(restore_spacing_sec=2.0, restore_jitter_sec=0.0)
    engine = make_engine(cfg)
    building = Building(cfg)
    engine.on_readings(T0, building.samples())
    _, fx = engine.on_command(T0, event_cmd(event_id, 9.0, duration_sec))
    building.apply(fx.writes)
    assert fx.writes == {"Water Heater": False, "Heater": False, "HVAC": False}
    return engine, building


def test_engine_restores_staggered_from_tick_and_only_what_it_shed() -> None:
    engine, _ = _three_shed("e", 100)
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


def test_restores_of_two_events_stay_spaced_and_most_important_first() -> None:
    """Event a ends and starts restoring; event b takes over what is still off and is ended at
    once: b's restore keeps its distance from a's last switching and still goes most important first."""
    engine, building = _three_shed("a", 10)
    switched: list[tuple[float, str]] = []

    def run(t: float, effects) -> None:
        building.apply(effects.writes)
        switched.extend((t, n) for n, v in effects.writes.items() if v)
        engine.on_readings(t, building.samples())

    run(T0 + 10, engine.tick(T0 + 10))
    assert switched == [(T0 + 10, "HVAC")]
    _, fx = engine.on_command(T0 + 11, event_cmd("b", 0.5, 100))
    run(T0 + 11, fx)
    _, fx = engine.on_command(T0 + 11, {"op": "restore", "correlationId": "r-b"})
    run(T0 + 11, fx)
    for k in range(1, 40):
        t = T0 + 11 + k * 0.5
        run(t, engine.tick(t))
    times = [t for t, _ in switched]
    assert all(b - a >= 2.0 for a, b in itertools.pairwise(times)), switched
    names = [n for _, n in switched]
    assert names.index("Heater") < names.index("Water Heater"), switched
