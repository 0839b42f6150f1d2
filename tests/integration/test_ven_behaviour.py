"""The VenAgent's rules on the real platform and the simulated building: staggered restore to the
pre-event state, overrides that win over events, config-store updates applied live, RPC API."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from tests.support.backend import Backend
from tests.support.system import Platform, SystemError_, wait_until
from tests.support.ven_checks import THING, TOPICS, ack_for, cid, enabled, restore_idle, send_event

pytestmark = pytest.mark.platform


def test_restore_is_staggered_and_returns_the_pre_event_state(building: str, platform: Platform,
                                                               backend: Backend) -> None:
    restore_idle(platform)
    # EV Charger is off before the event: whatever happens, the restore must leave it off.
    assert not enabled(platform, "EV_Charger_enabled")
    t0 = time.time()
    c = send_event(backend, 7.5, 3)
    ack = ack_for(backend, c)
    assert ack["status"] == "accepted" and ack["actual_shed_kw"] >= 7.5
    # From the shed's own record: a status read could come after this 3 s event already ended.
    shed = set(backend.wait_json(TOPICS.telemetry, lambda d: d.get("type") == "actuation" and d.get("reason") == "shed"
                                 and d.get("event_id") == f"evt-{c}")["writes"])
    assert {"HVAC", "Heater"} <= shed and "Lighting" not in shed
    wait_until(lambda: enabled(platform, "HVAC_enabled") and enabled(platform, "Heater_enabled"), 30, 0.5,
               "all shed circuits restored")

    def restore_records() -> list[dict]:
        return [d for d in (m.json() for m in backend.on_topic(TOPICS.telemetry) if m.at >= t0)
                if d.get("type") == "actuation" and d.get("reason") == "restore" and d.get("event_id") == f"evt-{c}"]

    restores = wait_until(lambda: len(restore_records()) >= len(shed) and restore_records(), 15, 0.3,
                          "one restore record per circuit")
    # One circuit per step, never the whole building in one jump, spaced by restore_spacing_sec:
    # the core holds the spacing between the switchings it really made (ts = the decision's clock).
    spacing = json.loads(platform.vctl("config", "get", "ven.agent", "config").stdout)["restore_spacing_sec"]
    assert spacing == 2.0
    assert all(len(r["writes"]) == 1 for r in restores)
    assert all(list(r["writes"].values()) == [True] for r in restores)
    times = sorted(r["ts"] for r in restores)
    assert all(b - a >= spacing - 1e-6 for a, b in itertools.pairwise(times)), times
    assert not enabled(platform, "EV_Charger_enabled")
    assert enabled(platform, "Lighting_enabled")


def test_override_wins_over_the_event(platform: Platform, backend: Backend) -> None:
    restore_idle(platform)
    result = platform.rpc("ven.agent", "set_override", "Heater", True)
    assert result["ok"]
    try:
        c = send_event(backend, 2.0, 60)
        assert ack_for(backend, c)["status"] == "accepted"
        assert enabled(platform, "Heater_enabled")  # pinned on: something else was shed instead
        status = platform.rpc("ven.agent", "get_status")
        assert "Heater" not in status["active_event"]["shed_circuits"]
        assert next(ci for ci in status["circuits"] if ci["name"] == "Heater")["override"] is True
        bad = platform.rpc("ven.agent", "set_override", "Jacuzzi", False)
        assert not bad["ok"] and "Jacuzzi" in bad["error"]
    finally:
        platform.rpc("ven.agent", "set_override", "Heater", None)
        restore_idle(platform)


def test_config_store_update_applies_live_and_bad_config_is_refused(platform: Platform, tmp_path) -> None:
    restore_idle(platform)
    current = json.loads(platform.vctl("config", "get", "ven.agent", "config").stdout)
    changed = dict(current, max_event_duration_sec=1234)
    path = tmp_path / "ven.json"
    path.write_text(json.dumps(changed))
    platform.vctl("config", "store", "ven.agent", "config", str(path))
    try:
        wait_until(lambda: "1234" in platform.rpc("ven.agent", "handle_command", {
            "op": "event", "correlationId": cid(), "venId": THING, "event_id": f"too-long-{cid()}", "shed_kw": 1,
            "duration_sec": 5000})["reason"], 15, 0.5, "the new maximum duration in force")
        broken = dict(changed, circuits=[{"name": "X"}])
        path.write_text(json.dumps(broken))
        platform.vctl("config", "store", "ven.agent", "config", str(path))
        # vctl config store returns once the agent's callback ran: the refused config changed nothing.
        assert platform.agent_running("ven.agent")
        assert len(platform.rpc("ven.agent", "get_status")["circuits"]) == len(current["circuits"])
        assert "1234" in platform.rpc("ven.agent", "handle_command", {
            "op": "event", "correlationId": cid(), "venId": THING, "event_id": f"too-long-{cid()}", "shed_kw": 1,
            "duration_sec": 5000})["reason"]
    finally:
        path.write_text(json.dumps(current))
        platform.vctl("config", "store", "ven.agent", "config", str(path))


def test_rpc_api_for_other_agents(platform: Platform) -> None:
    restore_idle(platform)
    event_id = f"evt-rpc-{cid()}"
    ack = platform.rpc("ven.agent", "send_event", 1.0, 60, event_id)
    assert ack["status"] == "accepted" and ack["event_id"] == event_id
    events = platform.rpc("ven.agent", "get_events")
    assert any(e.get("event_id") == event_id for e in events)
    rack = platform.rpc("ven.agent", "restore")
    assert rack["status"] == "accepted"
    status = platform.rpc("ven.agent", "get_status")
    for key in ("power_kw", "shed_kw", "active_event", "circuits"):
        assert key in status
    assert {"name", "enabled", "current_kw"} <= set(status["circuits"][0])
    restore_idle(platform)


def test_platform_restart_mid_event_reapplies_the_shed(platform: Platform, backend: Backend) -> None:
    """The simulated building comes back with every circuit on after a platform restart: the VEN
    must shed again from its persisted event, within seconds of starting."""
    restore_idle(platform)
    c = send_event(backend, 2.0, 300)
    assert ack_for(backend, c)["status"] == "accepted"
    platform.stop()
    platform.start()
    wait_until(lambda: platform.agent_running("ven.agent") and platform.agent_running("platform.driver"), 60, 0.5,
               "agents autostarted")
    # The driver needs a few seconds after a platform start before its first publish; from then
    # on the VEN sees the reset Heater and switches it off again.
    wait_until(lambda: not enabled(platform, "Heater_enabled"), 30, 0.5, "shed re-applied after platform restart",
               retry_on=(SystemError_,))
    assert platform.rpc("ven.agent", "get_status")["active_event"]["event_id"] == f"evt-{c}"
    wait_until(lambda: platform.rpc("ven.bridge", "get_status")["connected"], 45, 0.5, "bridge reconnected",
               retry_on=(SystemError_,))
    restore_idle(platform)
