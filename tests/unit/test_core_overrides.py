"""Overrides win over events; reconfiguration keeps the active event."""

from __future__ import annotations

from typing import Any

import pytest
from core_support import T0, Building, building_config, drive, event_cmd, make_engine

from ven_common.contract import BusTopics

from venagent.core import UnknownCircuitError, VenConfig, VenStore


def _active(**cfg: Any) -> tuple:
    config = building_config(**cfg)
    engine = make_engine(config)
    building = Building(config)
    engine.on_readings(T0, building.samples())
    _, fx = engine.on_command(T0, event_cmd("e", 2.0, 600))
    building.apply(fx.writes)
    return engine, building


def test_override_pins_circuit_leaves_shed_set_and_loop_compensates() -> None:
    engine, building = _active()
    fx = engine.set_override(T0 + 10, "Heater", True)
    assert dict(fx.writes) == {"Heater": True}
    assert fx.of_topic(BusTopics.ACTUATION)[0]["reason"] == "override"
    assert fx.of_topic(BusTopics.STATUS)[0]["overrides"] == {"Heater": True}
    building.apply(fx.writes)
    changes = drive(engine, building, T0 + 11, T0 + 20)
    # After hold_confirm_sec the loop sheds for the 2.0 kW excess, never touching Heater.
    assert [(t, dict(f.writes)) for t, f in changes] == [(T0 + 15, {"HVAC": False})]
    _, fx = engine.on_command(T0 + 30, {"op": "restore", "correlationId": "r"})
    later = [engine.tick(T0 + 30 + dt) for dt in range(10)]
    assert all("Heater" not in f.writes for f in [fx, *later])


def test_override_off_and_clear_and_unknown() -> None:
    engine, _ = _active()
    assert dict(engine.set_override(T0, "Lighting", False).writes) == {"Lighting": False}
    assert engine.status(T0)["circuits"][4]["override"] is False
    assert dict(engine.set_override(T0, "Lighting", None).writes) == {}
    assert engine.status(T0)["overrides"] == {}
    with pytest.raises(UnknownCircuitError):
        engine.set_override(T0, "Jacuzzi", True)
    with pytest.raises(ValueError):
        engine.set_override(T0, "Jacuzzi", None)


def test_config_overrides_apply_at_startup_and_runtime_changes_persist(tmp_path: Any) -> None:
    config = building_config(overrides={"Water Heater": False})
    path = tmp_path / "s.sqlite"
    engine = make_engine(config, VenStore(path))
    assert dict(engine.resume(T0).writes) == {"Water Heater": False}
    engine.set_override(T0 + 1, "Water Heater", None)
    engine.set_override(T0 + 1, "HVAC", True)
    restarted = make_engine(config, VenStore(path))
    assert dict(restarted.resume(T0 + 2).writes) == {"HVAC": True}
    assert restarted.status(T0 + 2)["overrides"] == {"HVAC": True}


def test_reconfigure_during_event_keeps_it_and_restores_removed_circuit() -> None:
    engine, building = _active()
    old = engine.config
    data = old.model_dump()
    data["circuits"] = [c for c in data["circuits"] if c["name"] != "Heater"]
    data["circuits"][0]["priority"] = 0  # HVAC now least important among the rest
    new = VenConfig.from_dict(data)
    fx = engine.reconfigure(T0 + 10, new)
    assert dict(fx.writes) == {"Heater": True}
    status = engine.status(T0 + 10)
    assert status["active_event"]["event_id"] == "e" and status["active_event"]["shed_circuits"] == []
    assert [c["name"] for c in status["circuits"]] == ["HVAC", "EV Charger", "Water Heater", "Lighting"]
    # The event continues; the next selection uses the new priorities (HVAC first now).
    building.apply(fx.writes)
    engine.on_readings(T0 + 10.5, building.samples())
    ack, fx = engine.on_command(T0 + 11, event_cmd("e", 5.0, 600, cid="mod"))
    assert ack["state"] == "active" and dict(fx.writes) == {"HVAC": False}


def test_reconfigure_applies_new_config_override() -> None:
    engine, _ = _active()
    data = engine.config.model_dump()
    data["overrides"] = {"HVAC": False}
    fx = engine.reconfigure(T0 + 5, VenConfig.from_dict(data))
    assert dict(fx.writes) == {"HVAC": False}
    assert engine.status(T0 + 5)["overrides"] == {"HVAC": False}



def test_a_shed_circuit_moved_to_another_device_is_switched_back_on_at_the_old_one() -> None:
    """Its old relay would otherwise stay off for good: nobody writes that point any more."""
    engine, _building = _active()
    assert engine.status(T0)["active_event"]["shed_circuits"] == ["Heater"]
    data = engine.config.model_dump()
    for c in data["circuits"]:
        c["device"] = "campus/building/other"
    fx = engine.reconfigure(T0 + 10, VenConfig.from_dict(data))
    assert dict(fx.writes) == {"Heater": True}  # the shell writes it with the old config: the old device
    status = engine.status(T0 + 10)
    assert status["active_event"]["shed_circuits"] == [] and status["power_kw"] is None  # nothing read there yet
