"""Closed-loop hold: shed more when load creeps up, give back the last circuit when there is room."""

from __future__ import annotations

from core_support import T0, Building, building_config, circuit, drive, event_cmd, make_engine

from ven_common.contract import BusTopics


def _started(config_overrides: dict | None = None, shed: float = 2.0) -> tuple:
    cfg = building_config(**(config_overrides or {}))
    engine = make_engine(cfg)
    building = Building(cfg)
    engine.on_readings(T0, building.samples())
    ack, fx = engine.on_command(T0, event_cmd("hold", shed, 3600))
    building.apply(fx.writes)
    return engine, building, ack


def test_sheds_more_when_total_rises_above_target_but_only_after_confirm() -> None:
    engine, building, _ = _started()
    # Target = 10.0 - 2.0 = 8.0; Heater shed → 7.5. HVAC now draws 2 kW more → total 9.5.
    building.extra_kw["HVAC"] = 2.0
    early = drive(engine, building, T0 + 1, T0 + 4)
    assert early == []  # within hold_confirm_sec (5 s) of the last change: wait for the meter
    later = drive(engine, building, T0 + 5, T0 + 5)
    assert len(later) == 1
    _t, fx = later[0]
    # Excess 1.5 kW among {HVAC 7.5, Water Heater 1.2}: walk takes Water Heater (1.2), cover → HVAC, prune keeps HVAC only.
    assert dict(fx.writes) == {"HVAC": False}
    assert fx.of_topic(BusTopics.ACTUATION)[0]["reason"] == "hold"


def test_releases_most_recent_when_it_fits_under_target() -> None:
    engine, building, _ = _started(shed=2.0)
    building.extra_kw["HVAC"] = 2.0
    drive(engine, building, T0 + 1, T0 + 5)  # HVAC shed at T0+5; total now 2.0 (Water Heater 1.2 + Lighting 0.8)
    assert building.state["HVAC"] is False and building.state["Heater"] is False
    building.extra_kw["HVAC"] = 0.0
    # Releasing HVAC would add back 7.5 kW (its draw when shed): 2.0 + 7.5 > 8.0 → keep it off.
    assert drive(engine, building, T0 + 6, T0 + 30) == []


def test_release_of_last_shed_circuit_respects_min_off() -> None:
    circuits = [circuit("Big", 4.0, 1, min_off_sec=60), circuit("Small", 1.0, 2), circuit("Base", 5.0, 0, critical=True)]
    cfg = building_config(circuits=circuits)
    engine = make_engine(cfg)
    building = Building(cfg, {"Big": True, "Small": True, "Base": True})
    building.extra_kw["Small"] = 0.0
    engine.on_readings(T0, building.samples())
    _, fx = engine.on_command(T0, event_cmd("e", 3.0, 3600))
    building.apply(fx.writes)
    assert dict(fx.writes) == {"Big": False}  # target 10 - 3 = 7; total now 6
    building.extra_kw["Base"] = -3.0  # base load drops: total 3.0, and 3.0 + 4.0 <= 7 → Big could come back
    early = drive(engine, building, T0 + 1, T0 + 59)
    assert early == []  # min_off_sec = 60 not yet satisfied
    late = drive(engine, building, T0 + 60, T0 + 60)
    assert [dict(fx.writes) for _, fx in late] == [{"Big": True}]


def test_min_on_keeps_recently_switched_on_circuit_out_of_selection() -> None:
    circuits = [circuit("A", 3.0, 0, min_on_sec=120), circuit("B", 3.0, 1)]
    cfg = building_config(circuits=circuits)
    engine = make_engine(cfg)
    building = Building(cfg, {"A": False, "B": True})
    engine.on_readings(T0, building.samples())
    building.state["A"] = True  # seen switching on at T0 + 10
    engine.on_readings(T0 + 10, building.samples())
    engine.on_readings(T0 + 19, building.samples())
    _ack, fx = engine.on_command(T0 + 20, event_cmd("e", 2.0, 600))
    assert dict(fx.writes) == {"B": False}  # A would be first by priority, but it was turned on 10 s ago
    building.apply(fx.writes)
    engine.on_readings(T0 + 199, building.samples())
    _ack2, fx2 = engine.on_command(T0 + 200, event_cmd("e", 5.0, 600))
    assert dict(fx2.writes) == {"A": False}  # modification: min_on now satisfied


def test_shed_circuit_found_on_again_is_switched_off_again() -> None:
    engine, building, _ = _started()
    assert building.state["Heater"] is False
    assert not engine.on_readings(T0 + 1, building.samples()).writes  # the write is seen landing
    building.state["Heater"] = True  # reset device / manual switch at the panel
    fx = engine.on_readings(T0 + 2, building.samples())
    assert dict(fx.writes) == {"Heater": False}
    assert fx.of_topic(BusTopics.ACTUATION)[0]["reason"] == "enforce"


def test_a_write_not_yet_visible_in_readings_is_not_resent_at_once() -> None:
    cfg = building_config()
    engine = make_engine(cfg)
    building = Building(cfg)
    engine.on_readings(T0, building.samples())
    _ack, fx = engine.on_command(T0, event_cmd("lag", 2.0, 3600))
    assert dict(fx.writes) == {"Heater": False}
    # The driver has not polled yet: readings still show the Heater on for a few seconds.
    assert not engine.on_readings(T0 + 2, building.samples()).writes
    assert dict(engine.on_readings(T0 + 6, building.samples()).writes) == {"Heater": False}
