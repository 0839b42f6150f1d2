"""Shed selection: the default building case and the general properties (hypothesis + brute force)."""

from __future__ import annotations

import itertools
import math

from core_support import T0, Building, building_config, event_cmd, make_engine
from hypothesis import given, settings
from hypothesis import strategies as st

from venagent.core.shedding import EPS_KW, Candidate, select_shed

TOL = 1e-6


def test_default_building_two_kw_sheds_exactly_heater() -> None:
    engine = make_engine()
    building = Building(engine.config)
    engine.on_readings(T0, building.samples())
    ack, fx = engine.on_command(T0 + 1, event_cmd("evt-001", 2.0, 300))
    assert dict(fx.writes) == {"Heater": False}
    assert ack["actual_shed_kw"] == 2.5 and ack["state"] == "active"
    assert "shortfall_kw" not in ack


def test_shortfall_is_reported_with_reasons() -> None:
    engine = make_engine()
    building = Building(engine.config)
    engine.on_readings(T0, building.samples())
    ack, fx = engine.on_command(T0 + 1, event_cmd("big", 20.0, 300))
    assert set(fx.writes) == {"HVAC", "Heater", "Water Heater"}
    assert ack["actual_shed_kw"] == 9.2 and ack["shortfall_kw"] == 10.8
    assert ack["note"] == "only 9.2 kW sheddable: EV Charger off, Lighting critical"


def test_selection_walks_priority_then_covers_then_prunes() -> None:
    cands = [Candidate("a", 1.0, 0), Candidate("b", 1.0, 1), Candidate("c", 5.0, 2), Candidate("d", 3.0, 3)]
    # walk: a, b (2.0); remaining 0.5 → smallest cover is d (3.0); prune drops b then a.
    assert select_shed(cands, 2.5).chosen == ("d",)
    assert select_shed(cands, 2.0).chosen == ("a", "b")
    assert select_shed(cands, 0).chosen == ()
    assert select_shed(cands, 100).shortfall_kw == 90.0


def test_zero_kw_circuits_are_never_chosen() -> None:
    sel = select_shed([Candidate("idle", 0.0, 0), Candidate("x", 2.0, 1)], 5.0)
    assert sel.chosen == ("x",) and sel.shortfall_kw == 3.0


candidate_lists = st.lists(
    st.tuples(st.floats(0.0, 50.0, allow_nan=False), st.integers(0, 5)), min_size=0, max_size=8
).map(lambda rows: [Candidate(f"c{i}", round(kw, 2), prio) for i, (kw, prio) in enumerate(rows)])
needs = st.floats(0.01, 120.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(cands=candidate_lists, need=needs)
def test_selection_properties(cands: list[Candidate], need: float) -> None:
    sel = select_shed(cands, need)
    by_name = {c.name: c for c in cands}
    chosen = [by_name[n] for n in sel.chosen]
    total = math.fsum(c.kw for c in chosen)
    available = math.fsum(c.kw for c in cands if c.kw > 0)
    assert len(set(sel.chosen)) == len(sel.chosen)
    assert all(c.kw > 0 for c in chosen)
    assert math.isclose(sel.shed_kw, total, abs_tol=TOL)
    if available + EPS_KW >= need:
        assert total + TOL >= need  # meets the need whenever it can
        for c in chosen:  # and nothing is redundant
            assert total - need < c.kw + TOL
    else:
        assert math.isclose(total, available, abs_tol=TOL)  # everything sheddable is shed
        assert math.isclose(sel.shortfall_kw, need - available, abs_tol=TOL)
    assert select_shed(list(reversed(cands)), need) == sel  # deterministic, order-independent


@settings(max_examples=100, deadline=None)
@given(cands=candidate_lists.filter(lambda cs: len(cs) <= 8), need=needs)
def test_selection_is_a_minimal_cover_compared_with_brute_force(cands: list[Candidate], need: float) -> None:
    """No feasible cover exists that is a strict subset of ours (brute force over all subsets)."""
    sel = select_shed(cands, need)
    chosen = set(sel.chosen)
    positive = [c for c in cands if c.kw > 0]
    feasible = any(
        math.fsum(c.kw for c in combo) + EPS_KW >= need
        for r in range(len(positive) + 1)
        for combo in itertools.combinations(positive, r)
    )
    assert feasible == (sel.shortfall_kw == 0.0)
    if feasible:
        by_name = {c.name: c for c in cands}
        for r in range(len(chosen)):
            for subset in itertools.combinations(sorted(chosen), r):
                assert math.fsum(by_name[n].kw for n in subset) + EPS_KW < need


circuit_rows = st.lists(
    st.tuples(st.floats(0.1, 9.0), st.integers(0, 4), st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=8
)


@settings(max_examples=60, deadline=None)
@given(rows=circuit_rows, need=st.floats(0.1, 30.0))
def test_engine_never_sheds_critical_disabled_or_overridden(rows: list[tuple[float, int, bool, bool, bool]], need: float) -> None:
    circuits = [
        {"name": f"c{i}", "device": "d", "enable_point": "e", "power_point": "p", "rated_kw": round(kw, 2),
         "priority": prio, "critical": crit}
        for i, (kw, prio, crit, _on, _ovr) in enumerate(rows)
    ]
    overrides = {f"c{i}": True for i, row in enumerate(rows) if row[4]}
    cfg = building_config(circuits=circuits, overrides=overrides)
    engine = make_engine(cfg)
    building = Building(cfg, {f"c{i}": row[3] for i, row in enumerate(rows)})
    engine.on_readings(T0, building.samples())
    _, fx = engine.on_command(T0 + 1, event_cmd("e", round(need, 2), 60))
    for name in fx.writes:
        i = int(name[1:])
        _kw, _prio, critical, on, overridden = rows[i]
        assert fx.writes[name] is False and on and not critical and not overridden
