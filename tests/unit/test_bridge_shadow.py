from __future__ import annotations

import json

from backendbridge.shadow import ShadowVersionSync, apply_delta, build_reported

LIMIT = 8 * 1024


def size(doc: dict) -> int:
    return len(json.dumps(doc, separators=(",", ":")).encode())


def seed_status(n: int) -> dict:
    return {
        "power_kw": 10.0,
        "shed_kw": 0.0,
        "active_event": {"event_id": "evt-1", "shed_kw": 2.0, "end_ts": 123, "notes": "n" * 100},
        "circuits": [
            {"name": f"circuit-{i}", "enabled": True, "current_kw": 1.25, "priority": i, "critical": False}
            for i in range(n)
        ],
    }


def test_seed_shape_with_online_and_bridge_counters() -> None:
    doc = build_reported(seed_status(5), bridge={"connected": True, "queue_depth": 3, "dropped": 0, "sent": 9})
    rep = doc["state"]["reported"]
    assert rep["online"] is True and rep["power_kw"] == 10.0 and len(rep["circuits"]) == 5
    assert rep["circuits"][0]["priority"] == 0 and rep["bridge"]["sent"] == 9


def test_thousand_circuits_fit_in_8kb_in_documented_order() -> None:
    doc = build_reported(seed_status(1000), bridge={"connected": True, "queue_depth": 1, "dropped": 0, "x": 1})
    rep = doc["state"]["reported"]
    assert size(doc) <= LIMIT
    assert rep["circuits_truncated"] == 1000 and 0 < len(rep["circuits"]) < 1000
    assert set(rep["circuits"][0]) == {"name", "enabled", "current_kw"}
    assert rep["active_event"] == {"event_id": "evt-1"}
    assert rep["bridge"] == {"connected": True, "queue_depth": 1, "dropped": 0}


def test_truncated_list_shows_shed_and_stale_first_and_summarises_the_rest() -> None:
    status = seed_status(500)
    for i in (7, 250, 499):
        status["circuits"][i]["enabled"] = False
    status["circuits"][300].update(enabled=None, current_kw=None, stale=True)   # as the VEN shows it
    doc = build_reported(status)
    rep = doc["state"]["reported"]
    assert size(doc) <= LIMIT
    shown = [c["name"] for c in rep["circuits"]]
    assert shown[:4] == ["circuit-7", "circuit-250", "circuit-300", "circuit-499"]
    assert shown[4] == "circuit-0"
    omitted = rep["circuits_omitted"]
    assert omitted["count"] == 500 - len(shown) and omitted["on"] == omitted["count"] and omitted["off"] == 0
    assert omitted["kw"] == 1.25 * omitted["count"]


def test_detail_dropped_first_when_that_suffices() -> None:
    doc = build_reported(seed_status(100))
    rep = doc["state"]["reported"]
    assert size(doc) <= LIMIT and len(rep["circuits"]) == 100
    assert "priority" not in rep["circuits"][0]


def test_hostile_status_still_fits() -> None:
    status = {"power_kw": float("nan"), "junk": ["y" * 300] * 200, "circuits": [{"name": "z" * 300}] * 50}
    doc = build_reported(status)
    assert size(doc) <= LIMIT
    assert doc["state"]["reported"]["power_kw"] is None
    assert build_reported(None) == {"state": {"reported": {"online": True}}}


def test_delta_permitted_keys_only() -> None:
    out = apply_delta({"metering_interval_sec": 30, "circuit_priorities": {"HVAC": 1, "EV": 0}, "mode": "x"})
    assert out.change == {"metering_interval_sec": 30, "circuit_priorities": {"HVAC": 1, "EV": 0}}
    assert "mode" in out.refused
    assert out.reported_echo() == out.change


def test_delta_value_checks() -> None:
    bad = apply_delta(
        {"metering_interval_sec": 0, "circuit_priorities": {"HVAC": -1}}
    )
    assert bad.change == {} and set(bad.refused) == {"metering_interval_sec", "circuit_priorities"}
    assert "metering_interval_sec" in apply_delta({"metering_interval_sec": True}).refused
    assert "metering_interval_sec" in apply_delta({"metering_interval_sec": 3601}).refused
    assert "circuit_priorities" in apply_delta({"circuit_priorities": {"a": 1.5}}).refused
    assert "circuit_priorities" in apply_delta({"circuit_priorities": [1]}).refused
    assert apply_delta("nope").refused == {"state": "delta state must be an object"}


def test_version_conflict_flow() -> None:
    sync = ShadowVersionSync(max_retries=2)
    assert not sync.on_rejected({"code": 400, "message": "bad"})
    assert sync.on_get_accepted({"version": 3}) is None  # nothing pending
    assert sync.on_rejected({"code": 409, "message": "Version conflict"})
    assert sync.on_get_accepted({"version": 7, "state": {}}) == 7
    assert sync.on_rejected({"code": 409})
    assert sync.on_get_accepted({"version": 8}) == 8
    assert not sync.on_rejected({"code": 409})  # retries exhausted
    sync.fresh_update()
    assert sync.on_rejected({"code": 409})
    assert sync.conflicts == 4


def test_the_vens_reason_for_a_refused_setting_reaches_the_shadow() -> None:
    from backendbridge.shadow_reporter import ShadowReporter

    reporter = ShadowReporter()
    outcome = reporter.take_delta({"state": {"metering_interval_sec": 5, "circuit_priorities": {"Sauna": 1}},
                                   "version": 4})
    reporter.settle(outcome, accepted={"accepted": {"metering_interval_sec": 5},
                                       "refused": {"circuit_priorities": "unknown circuit(s): Sauna"}})
    assert reporter.desired_refused == {"circuit_priorities": "unknown circuit(s): Sauna"}
    assert reporter.desired_echo == {"metering_interval_sec": 5}
    # An earlier VEN answered with the accepted settings only: the reason is then the generic one.
    reporter.settle(outcome, accepted={"metering_interval_sec": 5})
    assert reporter.desired_refused == {"circuit_priorities": "refused by the VEN"}
