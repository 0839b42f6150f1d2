"""VenAgent's shell in-process: a reading, a command, a config change, a shadow setting, an override."""

from __future__ import annotations

from typing import Any

from harness import FakeDriver, Router, published, ven_config, wait_for
from volttrontesting.server_mock import TestServer

from ven_common.contract import DRIVER_IDENTITY, BusTopics


def test_a_driver_reading_becomes_a_numbered_metering_message(ven: Any, server: TestServer,
                                                              driver: FakeDriver, router: Router) -> None:
    driver.publish_all(server)
    readings = published(server, BusTopics.METERING)
    assert len(readings) == 1 and (DRIVER_IDENTITY, "last") in router.calls  # freshness from the driver's read times
    reading = readings[0]
    assert reading.message["venId"] == "volttron_thing" and reading.message["quality"] == "good"
    assert reading.message["power_kw"] == driver.points["Building_kw"]
    assert {c["name"] for c in reading.message["circuits"]} == {"HVAC", "Heater", "EV Charger", "Water Heater",
                                                                "Lighting"}
    assert isinstance(reading.headers["vepoch"], str) and reading.headers["vseq"] >= 1


def test_an_event_command_switches_circuits_through_the_driver_and_is_acked(ven: Any, server: TestServer,
                                                                          driver: FakeDriver) -> None:
    driver.publish_all(server)
    ack = ven.handle_command({"op": "event", "correlationId": "c-ev", "venId": "volttron_thing",
                              "event_id": "evt-1", "shed_kw": 2.0, "duration_sec": 300}, source="mqtt")
    assert ack["status"] == "accepted" and ack["state"] == "active" and ack["actual_shed_kw"] >= 2.0
    assert driver.sets and all(value is False for value, _ in driver.sets)
    # the bus messages follow the RPC's answer (one publisher greenlet)
    acks = wait_for(lambda: published(server, BusTopics.ACK))
    assert acks[-1].message["correlationId"] == "c-ev" and acks[-1].message["source"] == "mqtt"
    assert published(server, BusTopics.ACTUATION) and published(server, BusTopics.EVENT_STATE)
    again = ven.handle_command({"op": "event", "correlationId": "c-ev", "venId": "volttron_thing",
                                "event_id": "evt-1", "shed_kw": 2.0, "duration_sec": 300}, source="mqtt")
    assert again == ack  # the stored ack, nothing changed


def test_a_refused_write_is_not_counted_as_shed(ven: Any, server: TestServer, driver: FakeDriver) -> None:
    driver.publish_all(server)
    driver.refuse = {"HVAC_enabled", "Heater_enabled", "Water_Heater_enabled"}
    ack = ven.handle_command({"op": "event", "correlationId": "c-rf", "event_id": "evt-rf", "shed_kw": 2.0,
                              "duration_sec": 300})
    assert ack["status"] == "accepted" and ack["actual_shed_kw"] == 0.0
    assert "did not confirm" in ack["note"]


def test_a_config_change_applies_without_a_restart_and_a_bad_one_is_refused(ven: Any, server: TestServer,
                                                                           driver: FakeDriver) -> None:
    driver.publish_all(server)
    ven.handle_command({"op": "event", "correlationId": "c-cfg", "event_id": "evt-cfg", "shed_kw": 1.0,
                        "duration_sec": 600})
    changed = ven_config(metering_interval_sec=5.0)
    changed["circuits"] = [c for c in changed["circuits"] if c["name"] != "Water Heater"]
    ven._configure("config", "UPDATE", changed)
    assert ven.config.metering_interval_sec == 5.0 and ven.config.circuit("Water Heater") is None
    assert ven.get_status()["active_event"]["event_id"] == "evt-cfg"
    ven._configure("config", "UPDATE", dict(changed, max_shed_kw=-1))
    assert ven.config.metering_interval_sec == 5.0  # the old one stays


def test_a_shadow_setting_goes_through_the_config_store(ven: Any) -> None:
    answer = ven.apply_shadow_config({"metering_interval_sec": 7, "circuit_priorities": {"HVAC": 1}})
    assert answer == {"accepted": {"metering_interval_sec": 7, "circuit_priorities": {"HVAC": 1}}, "refused": {}}
    assert ven.config.metering_interval_sec == 7 and ven.config.circuit("HVAC").priority == 1
    refused = ven.apply_shadow_config({"metering_interval_sec": 0})
    assert refused["accepted"] == {} and "metering_interval_sec" in refused["refused"]["metering_interval_sec"]
    assert ven.config.metering_interval_sec == 7


def test_an_override_pins_a_circuit_and_periodic_ticks_run(ven: Any, server: TestServer, driver: FakeDriver) -> None:
    driver.publish_all(server)
    assert ven.set_override("Heater", False) == {"ok": True, "circuit": "Heater", "override": False}
    assert driver.points["Heater_enabled"] is False
    assert ven.set_override("Nope", True)["ok"] is False
    periodics = ven.core.periodics
    assert [period for period, _ in periodics] == [0.5, 5.0]
    sets_before = list(driver.sets)
    periodics[0][1]()  # a tick with nothing due changes nothing: no write, the override holds
    assert driver.sets == sets_before
    assert driver.points["Heater_enabled"] is False
    assert ven.get_status()["overrides"] == {"Heater": False}
