"""Event commands against engine state: create, schedule, modify, cancel, restore, overlap, idempotency."""

from __future__ import annotations

from typing import Any

from core_support import T0, THING, Building, building_config, event_cmd, make_engine

from ven_common.contract import BusTopics

from venagent.core import VenEngine, VenStore


def _engine(config: Any = None) -> tuple[VenEngine, Building]:
    engine = make_engine(config)
    building = Building(engine.config)
    engine.on_readings(T0, building.samples())
    return engine, building


def test_accepted_ack_has_seed_shape_plus_additions() -> None:
    engine, _ = _engine()
    ack, fx = engine.on_command(T0 + 1.7, event_cmd("evt-001", 2.0, 300, cid="corr-1"))
    assert ack == {
        "op": "event", "status": "accepted", "event_id": "evt-001", "requested_shed_kw": 2.0, "actual_shed_kw": 2.5,
        "ts": int(T0 + 1), "correlationId": "corr-1", "venId": THING, "state": "active",
        "start_ts": T0 + 1.7, "end_ts": T0 + 301.7,
    }
    assert fx.of_topic(BusTopics.ACK) == [ack]
    states = [(m["previous"], m["state"]) for m in fx.of_topic(BusTopics.EVENT_STATE)]
    assert states == [(None, "scheduled"), ("scheduled", "active")]
    assert fx.of_topic(BusTopics.STATUS)[0]["active_event"]["event_id"] == "evt-001"


def test_future_event_is_scheduled_then_activated_by_tick() -> None:
    engine, building = _engine()
    ack, fx = engine.on_command(T0, event_cmd("later", 2.0, 60, start_ts=T0 + 100))
    assert (ack["state"], ack["actual_shed_kw"], fx.writes) == ("scheduled", 0.0, {})
    assert [e["event_id"] for e in engine.status(T0)["scheduled_events"]] == ["later"]
    assert engine.tick(T0 + 99).writes == {}
    engine.on_readings(T0 + 99.5, building.samples())  # the driver publishes every second
    fx = engine.tick(T0 + 100)
    assert fx.writes == {"Heater": False}
    assert engine.status(T0 + 100)["active_event"]["state"] == "active"


def test_past_start_within_window_starts_now_with_remaining_window() -> None:
    engine, _ = _engine()
    ack, _ = engine.on_command(T0 + 50, event_cmd("late", 2.0, 300, start_ts=T0))
    assert (ack["state"], ack["start_ts"], ack["end_ts"]) == ("active", T0 + 50, T0 + 300)


def test_modify_active_event_reselects_against_new_target() -> None:
    engine, building = _engine()
    _, fx = engine.on_command(T0, event_cmd("e", 2.0, 300))
    building.apply(fx.writes)
    engine.on_readings(T0 + 9, building.samples())
    ack, fx = engine.on_command(T0 + 10, event_cmd("e", 1.0, 600))
    # 1.0 kW: Water Heater (1.2) suffices; Heater is given back.
    assert dict(fx.writes) == {"Heater": True, "Water Heater": False}
    assert (ack["requested_shed_kw"], ack["actual_shed_kw"], ack["end_ts"]) == (1.0, 1.2, T0 + 600)


def test_modify_scheduled_event_moves_window() -> None:
    engine, _ = _engine()
    engine.on_command(T0, event_cmd("e", 2.0, 60, start_ts=T0 + 100))
    ack, _ = engine.on_command(T0 + 1, event_cmd("e", 3.0, 60, start_ts=T0 + 200))
    assert (ack["state"], ack["start_ts"], ack["requested_shed_kw"]) == ("scheduled", T0 + 200, 3.0)
    assert engine.tick(T0 + 150).writes == {}


def test_overlap_is_rejected_naming_the_other_event_and_non_overlap_is_scheduled() -> None:
    engine, _ = _engine()
    engine.on_command(T0, event_cmd("first", 2.0, 300))
    ack, fx = engine.on_command(T0 + 1, event_cmd("second", 1.0, 60, start_ts=T0 + 200))
    assert ack["reason_code"] == "conflict" and "'first'" in ack["reason"] and fx.writes == {}
    ack, _ = engine.on_command(T0 + 1, event_cmd("third", 1.0, 60, start_ts=T0 + 300))
    assert ack["state"] == "scheduled"


def test_finished_event_cannot_be_modified_or_cancelled() -> None:
    engine, _ = _engine()
    engine.on_command(T0, event_cmd("e", 2.0, 60))
    engine.tick(T0 + 60)
    ack, _ = engine.on_command(T0 + 61, event_cmd("e", 2.0, 60, cid="again"))
    assert ack["reason_code"] == "conflict" and "already completed" in ack["reason"]
    ack, _ = engine.on_command(T0 + 61, {"op": "cancel", "correlationId": "c", "event_id": "e"})
    assert ack["reason_code"] == "conflict"
    ack, _ = engine.on_command(T0 + 61, {"op": "cancel", "correlationId": "c2", "event_id": "nope"})
    assert ack["reason_code"] == "unknown_event"


def test_cancel_scheduled_writes_nothing_and_cancel_active_restores() -> None:
    engine, _ = _engine()
    engine.on_command(T0, event_cmd("s", 2.0, 60, start_ts=T0 + 1000))
    ack, fx = engine.on_command(T0 + 1, {"op": "cancel", "correlationId": "c1", "event_id": "s"})
    assert (ack["state"], fx.writes) == ("cancelled", {})
    assert fx.of_topic(BusTopics.REPORT) == []
    engine.on_command(T0 + 2, event_cmd("a", 2.0, 600))
    ack, fx = engine.on_command(T0 + 20, {"op": "cancel", "correlationId": "c2", "event_id": "a"})
    assert ack["state"] == "cancelled" and ack["actual_shed_kw"] == 2.5
    report = fx.of_topic(BusTopics.REPORT)[0]
    assert (report["state"], report["ended_by"]) == ("cancelled", "cancel")
    assert dict(fx.writes) == {"Heater": True}  # restore step 0 has no jitter in this config


def test_restore_ends_active_event_and_is_ok_without_one() -> None:
    engine, _ = _engine()
    ack, fx = engine.on_command(T0, {"op": "restore", "correlationId": "r0", "venId": THING})
    assert (ack["status"], ack["event_id"], fx.writes) == ("accepted", None, {})
    engine.on_command(T0, event_cmd("e", 2.0, 600))
    ack, fx = engine.on_command(T0 + 30, {"op": "restore", "correlationId": "r1"})
    assert (ack["event_id"], ack["state"]) == ("e", "completed")
    assert fx.of_topic(BusTopics.REPORT)[0]["ended_by"] == "restore"
    assert engine.status(T0 + 31)["active_event"] is None


def test_status_command_carries_snapshot() -> None:
    engine, _ = _engine()
    ack, fx = engine.on_command(T0, {"op": "status", "correlationId": "s1"})
    assert ack["status"] == "accepted" and ack["status_snapshot"]["power_kw"] == 10.0
    assert fx.writes == {}


def test_repeated_correlation_id_returns_identical_ack_and_changes_nothing() -> None:
    engine, _ = _engine()
    cmd = event_cmd("e", 2.0, 300, cid="same")
    first, _ = engine.on_command(T0, cmd)
    engine.on_command(T0 + 5, {"op": "cancel", "correlationId": "c", "event_id": "e"})
    again, fx = engine.on_command(T0 + 10, cmd)
    assert again == first and fx.writes == {}
    assert engine.status(T0 + 10)["active_event"] is None  # not re-created
    bad = {"op": "event", "correlationId": "bad-1", "event_id": "x", "shed_kw": -1, "duration_sec": 60}
    rejected, _ = engine.on_command(T0, bad)
    assert engine.on_command(T0 + 1, bad)[0] == rejected  # rejections are replayed too


def test_a_correlation_id_reused_for_another_command_is_rejected_and_changes_nothing() -> None:
    engine, _ = _engine()
    first, _ = engine.on_command(T0, event_cmd("e", 2.0, 300, cid="same"))
    other, fx = engine.on_command(T0 + 1, event_cmd("e2", 9.0, 300, cid="same"))
    assert other["status"] == "rejected" and other["reason_code"] == "correlation_reused"
    assert "'e'" in other["reason"] and fx.writes == {}
    assert engine.status(T0 + 1)["active_event"]["requested_shed_kw"] == 2.0
    # The first command's ack stays the answer to its correlationId.
    assert engine.on_command(T0 + 2, event_cmd("e", 2.0, 300, cid="same"))[0] == first


def test_idempotency_survives_store_reopen_and_is_bounded(tmp_path: Any) -> None:
    path = tmp_path / "ven.sqlite"
    config = building_config(ack_cache_size=3)
    engine = make_engine(config, VenStore(path))
    engine.on_readings(T0, Building(config).samples())
    first, _ = engine.on_command(T0, event_cmd("e", 2.0, 300, cid="keep"))
    reopened = make_engine(config, VenStore(path))
    again, fx = reopened.on_command(T0 + 1, event_cmd("e", 2.0, 300, cid="keep"))
    assert again == first and fx.writes == {}
    for i in range(3):
        reopened.on_command(T0 + 2, {"op": "status", "correlationId": f"s{i}"})
    evicted, _ = reopened.on_command(T0 + 3, event_cmd("e", 2.0, 300, cid="keep"))
    assert evicted != first  # oldest evicted: handled afresh (now a modification of the live event)
    assert evicted["status"] == "accepted" and evicted["ts"] == int(T0 + 3)
