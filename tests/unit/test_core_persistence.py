"""Store round-trips and restart behaviour (resume)."""

from __future__ import annotations

from typing import Any

from core_support import T0, Building, building_config, drive, event_cmd, make_engine

from ven_common.contract import BusTopics

from venagent.core import VenStore


def _running(path: Any, **cfg: Any) -> tuple:
    config = building_config(**cfg)
    engine = make_engine(config, VenStore(path))
    building = Building(config)
    engine.resume(T0 - 60)
    drive(engine, building, T0 - 60, T0, step=10)
    return config, engine, building


def test_store_uses_wal_and_roundtrips(tmp_path: Any) -> None:
    store = VenStore(tmp_path / "s.sqlite")
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.set_override("A", True)
    store.set_override("B", None)
    store.put_ack("c", {"x": 1}, keep=10)
    store.close()
    again = VenStore(tmp_path / "s.sqlite")
    assert again.load_overrides() == {"A": True, "B": None}
    assert again.get_ack("c") == {"x": 1}


def test_active_event_is_reapplied_after_restart(tmp_path: Any) -> None:
    path = tmp_path / "ven.sqlite"
    config, engine, building = _running(path)
    _, fx = engine.on_command(T0, event_cmd("e", 2.0, 600))
    building.apply(fx.writes)
    drive(engine, building, T0 + 1, T0 + 30)
    restarted = make_engine(config, VenStore(path))
    fx = restarted.resume(T0 + 100)
    assert dict(fx.writes) == {"Heater": False}
    assert fx.of_topic(BusTopics.ACTUATION)[0]["reason"] == "resume"
    status = restarted.status(T0 + 100)
    assert status["active_event"]["event_id"] == "e" and status["active_event"]["shed_circuits"] == ["Heater"]
    # It still ends on schedule, from persisted state, and restores.
    fx = restarted.tick(T0 + 600)
    assert dict(fx.writes) == {"Heater": True}
    assert fx.of_topic(BusTopics.REPORT)[0]["ended_by"] == "schedule"


def test_event_that_ended_while_down_is_restored_and_completed(tmp_path: Any) -> None:
    path = tmp_path / "ven.sqlite"
    config, engine, building = _running(path, restore_spacing_sec=5.0)
    _, fx = engine.on_command(T0, event_cmd("e", 3.0, 60))
    building.apply(fx.writes)
    assert dict(fx.writes) == {"Water Heater": False, "Heater": False}
    drive(engine, building, T0 + 1, T0 + 20)  # accumulators persisted at least every 10 s
    restarted = make_engine(config, VenStore(path))
    fx = restarted.resume(T0 + 1000)
    report = fx.of_topic(BusTopics.REPORT)[0]
    assert (report["event_id"], report["state"], report["ended_by"], report["end_ts"]) == ("e", "completed", "schedule", T0 + 60)
    assert report["delivered_kwh"] > 0
    assert dict(fx.writes) == {"Heater": True}  # reverse shed order, staggered from now
    assert dict(restarted.tick(T0 + 1004.9).writes) == {}
    assert dict(restarted.tick(T0 + 1005).writes) == {"Water Heater": True}
    assert restarted.events()[0]["state"] == "completed"


def test_scheduled_event_due_during_downtime_activates_and_missed_one_is_cancelled(tmp_path: Any) -> None:
    path = tmp_path / "ven.sqlite"
    config, engine, _ = _running(path)
    engine.on_command(T0, event_cmd("soon", 2.0, 600, start_ts=T0 + 100))
    engine.on_command(T0, event_cmd("gone", 2.0, 10, start_ts=T0 + 20))
    restarted = make_engine(config, VenStore(path))
    fx = restarted.resume(T0 + 200)
    states = {(m["event_id"], m["state"], m.get("ended_by")) for m in fx.of_topic(BusTopics.EVENT_STATE)}
    assert states == {("gone", "cancelled", "restart"), ("soon", "active", None)}
    # No readings yet after the restart: shedding starts with the first one.
    assert fx.writes == {}
    fx = restarted.on_readings(T0 + 201, Building(config).samples())
    assert dict(fx.writes) == {"Heater": False}


def test_pending_restore_survives_restart(tmp_path: Any) -> None:
    path = tmp_path / "ven.sqlite"
    config, engine, _building = _running(path, restore_spacing_sec=30.0)
    _, _fx = engine.on_command(T0, event_cmd("e", 3.0, 600))
    engine.on_command(T0 + 10, {"op": "restore", "correlationId": "r"})
    restarted = make_engine(config, VenStore(path))
    assert dict(restarted.resume(T0 + 15).writes) == {}
    assert dict(restarted.tick(T0 + 40).writes) == {"Water Heater": True}


def test_override_from_new_config_beats_pending_restore_after_restart(tmp_path: Any) -> None:
    path = tmp_path / "ven.sqlite"
    _config, engine, _ = _running(path, restore_spacing_sec=30.0)
    engine.on_command(T0, event_cmd("e", 3.0, 600))
    engine.on_command(T0 + 10, {"op": "restore", "correlationId": "r"})  # Water Heater pending at T0+40
    pinned = building_config(restore_spacing_sec=30.0, overrides={"Water Heater": False})
    restarted = make_engine(pinned, VenStore(path))
    assert dict(restarted.resume(T0 + 15).writes) == {"Water Heater": False}
    assert dict(restarted.tick(T0 + 40).writes) == {}
