"""Baselines, M&V integration on a synthetic trace, metering and status shapes."""

from __future__ import annotations

import math

import pytest
from core_support import T0, Building, building_config, circuit, event_cmd, make_engine
from hypothesis import given, settings
from hypothesis import strategies as st

from ven_common.contract import BusTopics

from venagent.core import CircuitSample
from venagent.core.baseline import Baseline, DayMatchingBaseline, MeterBeforeBaseline, RollingMeanBaseline
from venagent.core.mv import MvAccumulator


def test_rolling_mean_is_the_last_n_samples() -> None:
    b = RollingMeanBaseline(3)
    assert b.value(0) is None
    for t, kw in enumerate([10, 20, 30, 40]):
        b.add(t, kw)
    assert b.value(4) == 30.0
    assert b.before(3) == 25.0  # only samples still kept (the last 3) and strictly before t=3


def test_meter_before_uses_window_and_falls_back_to_latest() -> None:
    b = MeterBeforeBaseline(window_sec=300)
    assert b.before(1000) is None
    b.add(100, 50.0)
    assert b.before(1000) == 50.0  # nothing in [700, 1000): fall back to the latest reading
    b.add(800, 10.0)
    b.add(900, 20.0)
    assert b.before(1000) == 15.0
    assert b.before(900) == 10.0  # strictly before
    assert isinstance(b, Baseline) and isinstance(RollingMeanBaseline(2), Baseline)


def test_day_matching_is_a_documented_seam_not_a_fake() -> None:
    with pytest.raises(NotImplementedError):
        DayMatchingBaseline(5, 10)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=1, max_size=30))
def test_meter_before_equals_plain_mean_inside_window(values: list[float]) -> None:
    b = MeterBeforeBaseline(window_sec=1e6)
    for t, kw in enumerate(values):
        b.add(float(t), kw)
    assert math.isclose(b.before(len(values)) or 0.0, math.fsum(values) / len(values), abs_tol=1e-9)


def test_accumulator_trapezoid_hold_and_gap() -> None:
    mv = MvAccumulator(baseline_kw=10.0, start_ts=0.0)
    mv.add_sample(0.0, 10.0)
    mv.add_sample(10.0, 8.0)  # trapezoid 0→2 over 10 s = 10 kWs
    mv.gap()
    mv.add_sample(100.0, 6.0)  # no bridging of the 90 s hole
    mv.circuit_shed(0.0, "A", 2.0)
    mv.circuit_released(10.0, "A")
    out = mv.finish(110.0)  # hold 4 kW for 10 s = 40 kWs
    assert out["delivered_kwh"] == pytest.approx(50.0 / 3600)
    assert out["mean_actual_shed_kw"] == pytest.approx(50.0 / 20.0)
    assert out["duration_sec"] == 110.0
    assert out["circuits"] == [{"name": "A", "shed_sec": 10.0, "mean_kw": 2.0}]


def test_event_report_numbers_on_synthetic_trace() -> None:
    """Meter-configured building: 10 kW flat for 5 min, then a 2 kW shed for 100 s.

    Baseline = 10.0 (mean of the 300 s window). Readings at 1 s: shed is 0 at activation,
    2.0 from the first reading after it; trapezoid gives 1 kWs for the first second and
    2 kW × 99 s after → 199 kWs = 0.0552777… kWh over 100 s → mean 1.99 kW.
    """
    cfg = building_config(
        circuits=[circuit("Load", 2.0, 1), circuit("Rest", 8.0, 2, critical=True)],
        meter={"device": "campus/building/sim", "point": "Building_kw"},
    )
    engine = make_engine(cfg)
    on = {"Load": CircuitSample(True, 2.0), "Rest": CircuitSample(True, 8.0)}
    for t in range(-300, 1):
        engine.on_readings(T0 + t, on, meter_kw=10.0)
    ack, fx = engine.on_command(T0, event_cmd("mv", 2.0, 100))
    assert dict(fx.writes) == {"Load": False}
    off = {"Load": CircuitSample(False, 0.0), "Rest": CircuitSample(True, 8.0)}
    metering = []
    for t in range(1, 100):
        fx = engine.on_readings(T0 + t, off, meter_kw=8.0)
        metering += fx.of_topic(BusTopics.METERING)
    fx = engine.tick(T0 + 100)
    report = fx.of_topic(BusTopics.REPORT)[0]
    assert report["baseline_kw"] == 10.0
    assert report["delivered_kwh"] == pytest.approx(199.0 / 3600, abs=1e-12)
    assert report["mean_actual_shed_kw"] == pytest.approx(1.99)
    assert report["duration_sec"] == 100.0
    assert report["circuits"] == [{"name": "Load", "shed_sec": 100.0, "mean_kw": 2.0}]
    assert report["correlationId"] == ack["correlationId"] and report["type"] == "event_report"
    assert set(report) == {
        "type", "event_id", "correlationId", "venId", "state", "ended_by", "start_ts", "end_ts", "requested_shed_kw",
        "baseline_kw", "mean_actual_shed_kw", "delivered_kwh", "duration_sec", "circuits", "ts",
    }
    assert metering[-1]["shed_kw"] == 2.0 and metering[-1]["active_event"] == "mv"
    assert metering[-1]["power_kw"] == 8.0  # meter wins over the circuit sum


def test_metering_rate_limit_and_shape() -> None:
    engine = make_engine(building_config(metering_interval_sec=10.0))
    building = Building(engine.config)
    emitted = [t for t in range(0, 40) if engine.on_readings(T0 + t, building.samples()).of_topic(BusTopics.METERING)]
    assert emitted == [0, 10, 20, 30]  # one per interval from 1 s publishes (tests/unit/test_core_cadence.py)
    record = engine.on_readings(T0 + 100, building.samples()).of_topic(BusTopics.METERING)[0]
    assert set(record) == {"venId", "ts", "power_kw", "baseline_kw", "shed_kw", "active_event", "circuits", "quality"}
    assert record["quality"] == "good"
    assert record["power_kw"] == 10.0 and record["shed_kw"] == 0.0 and record["active_event"] is None
    assert record["circuits"][0] == {"name": "HVAC", "enabled": True, "current_kw": 5.5}


def test_readings_merge_partial_ignore_unknown_and_non_finite() -> None:
    engine = make_engine()
    engine.on_readings(T0, {"HVAC": CircuitSample(True, 5.5), "Ghost": CircuitSample(True, 99.0)})
    engine.on_readings(T0 + 1, {"Heater": CircuitSample(True, float("nan")), "HVAC": CircuitSample(None, float("inf"))})
    engine.on_readings(T0 + 2, {"Heater": CircuitSample(True, 2.5)})
    status = engine.status(T0 + 2)
    # Three circuits were never read: the building's total is unknown, not 8 kW.
    assert status["power_kw"] is None and status["quality"] == "stale"
    assert [c["name"] for c in status["circuits"]] == ["HVAC", "Heater", "EV Charger", "Water Heater", "Lighting"]
    assert status["circuits"][0]["enabled"] is True and status["circuits"][0]["current_kw"] == 5.5
    assert [c["name"] for c in status["circuits"] if c.get("stale")] == ["EV Charger", "Water Heater", "Lighting"]
    engine.on_readings(T0 + 3, {n: CircuitSample(n != "EV Charger", kw) for n, kw in
                                (("EV Charger", 0.0), ("Water Heater", 1.2), ("Lighting", 0.8))})
    fresh = engine.status(T0 + 3)
    assert fresh["power_kw"] == 10.0 and fresh["quality"] == "good" and fresh["device_faults"] == []


def test_back_to_back_events_keep_the_pre_event_baseline() -> None:
    """Readings taken while shed (or restoring) never enter the baselines."""
    from core_support import drive

    cfg = building_config()
    engine = make_engine(cfg)
    building = Building(cfg)
    drive(engine, building, T0, T0 + 120)  # 10.0 kW for two minutes
    _first_ack, fx = engine.on_command(T0 + 121, event_cmd("first", 2.0, 60))
    building.apply(fx.writes)
    drive(engine, building, T0 + 122, T0 + 240)  # shed, then restored step by step
    assert engine.status(T0 + 240)["active_event"] is None
    _ack, fx = engine.on_command(T0 + 241, event_cmd("second", 2.0, 60))
    building.apply(fx.writes)
    drive(engine, building, T0 + 242, T0 + 250)
    status = engine.status(T0 + 250)
    assert status["baseline_kw"] == pytest.approx(10.0)
    assert status["shed_kw"] == pytest.approx(2.5)


def test_readings_before_a_restore_shows_do_not_enter_the_baseline() -> None:
    from core_support import drive

    cfg = building_config(restore_jitter_sec=0.0)
    engine = make_engine(cfg)
    building = Building(cfg)
    drive(engine, building, T0, T0 + 60)
    _ack, fx = engine.on_command(T0 + 61, event_cmd("lagging", 2.0, 30))
    building.apply(fx.writes)
    drive(engine, building, T0 + 62, T0 + 90)
    restore = engine.tick(T0 + 91.5)  # the restore step is due: Heater back on
    assert dict(restore.writes) == {"Heater": True}
    # The driver has not polled yet: two more readings still show the Heater off (7.5 kW).
    for t in (T0 + 92, T0 + 93):
        engine.on_readings(t, building.samples())
    assert engine.status(T0 + 93)["baseline_kw"] == pytest.approx(10.0)


def test_many_devices_reporting_in_one_poll_round_give_one_baseline_sample() -> None:
    """A campus's devices each publish once a second: 'the mean of the last N' stays N seconds."""
    cfg = building_config(baseline_samples=10)
    engine = make_engine(cfg)
    building = Building(cfg)
    for second in range(10):
        if second == 9:
            building.extra_kw["HVAC"] = 3.0   # 13 kW in the last round
        # One publish per circuit's device in each round, 10 ms apart, HVAC's first.
        for k, (name, sample) in enumerate(building.samples().items()):
            engine.on_readings(T0 + second + 0.01 * k, {name: sample})
    # Ten rounds, one sample each: nine at 10 kW and one at 13 kW (not five publishes of the last round).
    assert engine.status(T0 + 10)["baseline_kw"] == pytest.approx(10.3)


def test_the_running_figures_follow_the_reports_rules() -> None:
    """``so_far`` (status, page) and ``finish`` (the report) give the same numbers at the same moment."""
    from venagent.core.mv import MvAccumulator
    running, closing = MvAccumulator(10.0, 1000.0), MvAccumulator(10.0, 1000.0)
    for acc in (running, closing):
        acc.add_sample(1000.0, 8.0)
        acc.add_sample(1010.0, 7.0)
    assert running.so_far(1000.0 + 10.0)["mean_shed_kw"] == 2.5
    at_end = running.so_far(1030.0)
    report = closing.finish(1030.0)
    assert at_end["mean_shed_kw"] == round(report["mean_actual_shed_kw"], 3)
    assert at_end["delivered_kwh"] == round(report["delivered_kwh"], 4)
    assert running.last_ts == 1010.0, "so_far closed the books"
