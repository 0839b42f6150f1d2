"""Stale readings and unconfirmed writes: shown truthfully, never acted on, converged after."""

from __future__ import annotations

from core_support import T0, Building, building_config, event_cmd, make_engine

from ven_common.contract import BusTopics

DEVICE = "campus/building/sim"


def _idle(seconds: int = 10):
    config = building_config()
    engine = make_engine(config)
    building = Building(config)
    for t in range(seconds):
        engine.on_readings(T0 + t, building.samples())
    return engine, building


def test_event_during_a_driver_outage_is_accepted_with_nothing_claimed_and_sheds_when_fresh() -> None:
    engine, building = _idle()
    now = T0 + 30  # the last reading is 21 s old: stale
    pending = engine.begin_command(now, event_cmd("e", 2.0, 600))
    assert pending.effects.writes == {}  # stale data drives no decision
    ack, _ = engine.complete_command(now, pending, written=(), failed={})
    assert ack["status"] == "accepted" and ack["actual_shed_kw"] == 0.0 and ack["shortfall_kw"] == 2.0
    assert DEVICE in ack["note"] and "no fresh reading" in ack["note"]
    fx = engine.on_readings(now + 1, building.samples())
    assert dict(fx.writes) == {"Heater": False}


def test_unconfirmed_switch_off_is_not_counted_and_is_sent_again_when_the_device_answers() -> None:
    engine, building = _idle()
    now = T0 + 10
    pending = engine.begin_command(now, event_cmd("e", 2.0, 600))
    assert dict(pending.effects.writes) == {"Heater": False}
    ack, fx = engine.complete_command(now, pending, written=pending.effects.writes,
                                      failed={"Heater": "Timeout: no answer within 3 s"})
    assert ack["actual_shed_kw"] == 0.0 and ack["shortfall_kw"] == 2.0
    assert "Heater" in ack["note"] and "Timeout" in ack["note"]
    faults = fx.of_topic(BusTopics.DEVICE_FAULT)
    assert [(f["device"], f["kind"], f["state"]) for f in faults] == [(DEVICE, "write", "begin")]
    # The device did not switch it: a fresh reading shows Heater on, and the VEN sends it again.
    fx = engine.on_readings(now + 6, building.samples())
    assert fx.writes.get("Heater") is False
    building.apply(fx.writes)
    fx = engine.on_readings(now + 7, building.samples())
    assert [(f["kind"], f["state"]) for f in fx.of_topic(BusTopics.DEVICE_FAULT)] == [("write", "end")]
    assert engine.status(now + 7)["device_faults"] == []


def test_outage_mid_event_holds_still_meters_stale_and_converges_without_overshoot() -> None:
    engine, building = _idle()
    now = T0 + 10
    _, fx = engine.on_command(now, event_cmd("e", 2.0, 600))
    building.apply(fx.writes)
    for t in range(1, 10):
        building.apply(engine.on_readings(now + t, building.samples()).writes)
    shed_before = sorted(engine.status(now + 9)["active_event"]["shed_circuits"])
    # The driver stops: no publish for 60 s. Ticks must not shed anything more.
    metering, faults = [], []
    for half in range(1, 121):
        fx = engine.tick(now + 9 + half / 2)
        assert fx.writes == {}
        metering += fx.of_topic(BusTopics.METERING)
        faults += fx.of_topic(BusTopics.DEVICE_FAULT)
    stale = [m for m in metering if m["quality"] == "stale"]
    assert len(stale) >= 50, "metering kept its cadence through the outage"
    assert all(m["power_kw"] is None and m["shed_kw"] is None for m in stale)
    assert all(c["current_kw"] is None for c in stale[-1]["circuits"])
    assert stale[-1]["device_faults"][0]["device"] == DEVICE
    assert [(f["kind"], f["state"]) for f in faults] == [("stale", "begin")]
    status = engine.status(now + 69)
    assert status["power_kw"] is None and status["device_faults"][0]["kind"] == "stale"
    # The driver comes back and its device lost the relays (all on): the same set is shed again.
    building.state.update({"HVAC": True, "Heater": True, "Water Heater": True})
    back = now + 70
    fx = engine.on_readings(back, building.samples())
    assert sorted(n for n, on in fx.writes.items() if on is False) == shed_before
    assert [(f["kind"], f["state"]) for f in fx.of_topic(BusTopics.DEVICE_FAULT)] == [("stale", "end")]
    building.apply(fx.writes)
    worst = 0.0
    for t in range(1, 30):
        building.apply(engine.on_readings(back + t, building.samples()).writes)
        worst = max(worst, 10.0 - building.total())
    assert worst <= 2.0 + 1.2, f"shed {worst} kW for a 2 kW request"
    assert sorted(engine.status(back + 29)["active_event"]["shed_circuits"]) == shed_before


def test_a_restore_the_driver_did_not_confirm_is_sent_again() -> None:
    engine, building = _idle()
    now = T0 + 10
    _, fx = engine.on_command(now, event_cmd("e", 2.0, 600))
    building.apply(fx.writes)
    engine.on_readings(now + 1, building.samples())
    t = now + 2
    pending = engine.begin_command(t, {"op": "restore", "correlationId": "r"})
    writes = dict(pending.effects.writes)
    assert writes == {"Heater": True}
    engine.complete_command(t, pending, written=writes, failed={"Heater": "refused"})
    fx = engine.on_readings(t + 6, building.samples())  # still off: the restore is re-sent
    assert dict(fx.writes) == {"Heater": True}


def test_values_the_driver_republishes_from_its_cache_are_not_fresh_and_drive_nothing() -> None:
    """A driver keeps publishing its last values for a few polls after the device stopped
    answering; their read time (the driver's last()) tells them apart from new readings."""
    from venagent.core import CircuitSample

    engine, building = _idle()
    now = T0 + 10
    _, fx = engine.on_command(now, event_cmd("e", 2.0, 600))
    building.apply(fx.writes)
    read_at = now - 0.7  # the device's last answer came just before the shed
    cached = {n: CircuitSample(s.enabled, s.kw, read_ts=read_at) for n, s in Building(engine.config).samples().items()}
    writes = {}
    for t in range(1, 12):
        fx = engine.on_readings(now + t, cached)  # arrives every second, never newer
        writes.update(fx.writes)
        writes.update(engine.tick(now + t + 0.5).writes)
    assert writes == {}, "nothing decided on values read before the shed"
    assert engine.status(now + 11)["quality"] == "stale"


def test_a_publish_of_the_drivers_previous_poll_after_a_read_back_does_not_undo_it() -> None:
    """The VEN reads a switched circuit back at once; the driver's next publish, of its previous
    poll (read before the switch), is older news and neither shows nor drives anything."""
    from venagent.core import CircuitSample

    engine, building = _idle()
    now = T0 + 10.2
    _, fx = engine.on_command(now, event_cmd("rb", 2.0, 600))
    assert dict(fx.writes) == {"Heater": False}
    before_switch = building.samples()   # what the driver polled before the switch
    building.apply(fx.writes)
    read_back = {"Heater": CircuitSample(enabled=False, kw=0.0, read_ts=now + 0.3)}
    fx = engine.on_readings(now + 0.5, read_back)
    assert engine.status(now + 0.5)["shed_kw"] > 0
    old = {n: CircuitSample(s.enabled, s.kw, read_ts=now - 0.5) for n, s in before_switch.items()}
    fx = engine.on_readings(now + 0.8, old)
    heater = next(c for c in engine.status(now + 0.8)["circuits"] if c["name"] == "Heater")
    assert heater["enabled"] is False and heater["current_kw"] == 0.0, heater
    assert not fx.writes   # the old "Heater on" is not taken for an override to enforce


def test_a_poll_read_before_a_confirmed_switch_landing_after_it_is_not_the_device_switching_back() -> None:
    """The driver stamps a poll when it lands: one that read the relay before the switch the device
    confirmed can land after it. Within a second that is older news; later it is the device."""
    from venagent.core import CircuitSample

    engine, building = _idle()
    now = T0 + 10.2
    _, fx = engine.on_command(now, event_cmd("land", 2.0, 600))
    assert dict(fx.writes) == {"Heater": False}
    before = building.samples()   # Heater still on
    building.apply(fx.writes)
    engine.on_readings(now + 0.3, {"Heater": CircuitSample(enabled=False, kw=0.0, read_ts=now + 0.25)})  # read-back
    late = {n: CircuitSample(s.enabled, s.kw, read_ts=now + 0.4) for n, s in before.items()}
    fx = engine.on_readings(now + 0.45, late)
    heater = next(c for c in engine.status(now + 0.45)["circuits"] if c["name"] == "Heater")
    assert heater["enabled"] is False and heater["current_kw"] == 0.0 and not fx.writes, heater
    really_on = {n: CircuitSample(s.enabled, s.kw, read_ts=now + 2.0) for n, s in before.items()}
    fx = engine.on_readings(now + 2.0, really_on)
    assert dict(fx.writes) == {"Heater": False}   # the device is on again: switched off again
