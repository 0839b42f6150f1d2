"""The cloud side on the embedded default, as the operations guide describes the backend: the
local backend stand-in registers VENs, stores metering one row per message, stores acks against
their commands, and its EventCommandService dispatches active events to online VENs."""

from __future__ import annotations

import time

import pytest

from ven_common.contract import registration_body

from tests.support.cloud import CloudBackend
from tests.support.device import PanelDevice, wait_relays
from tests.support.system import Platform, wait_until
from tests.support.ven_checks import THING, restore_idle

pytestmark = pytest.mark.platform


def test_registration_as_the_guide_posts_it(platform: Platform, cloud: CloudBackend) -> None:
    status, health = cloud.get("/health")
    assert status == 200 and health["status"] == "ok" and health["mqtt_connected"] is True
    body = {"name": "VEN another_thing", "status": "online", "location": {"lat": 37.7749, "lon": -122.4194},
            "registrationId": "another_thing"}
    status, created = cloud.request("POST", "/api/vens/", body)
    assert status == 201 and created["registrationId"] == "another_thing" and created["location"]["lat"] == 37.7749
    status, again = cloud.request("POST", "/api/vens/", body)
    assert status == 409 and "already registered" in again["detail"]
    # The bridge registered our VEN at start (BACKEND_URL points at the stand-in); the seed's body.
    assert platform.rpc("ven.bridge", "register")["status"] == 409
    vens = {v["registrationId"]: v for v in cloud.get("/api/vens/")[1]}
    assert vens[THING]["name"] == registration_body(THING)["name"] and vens[THING]["online"] is True
    # Bad requests name the field and change nothing.
    status, bad = cloud.request("POST", "/api/vens/", {"name": "x", "registrationId": "a/b"})
    assert status == 422 and "registrationId" in str(bad)
    status, bad = cloud.request("POST", "/api/vens/", {"name": "x", "registrationId": "ok",
                                                        "location": {"lat": 91, "lon": 0}})
    assert status == 422 and "lat" in str(bad)
    status, bad = cloud.request("POST", "/api/events/", {"venIds": [], "shed_kw": -1, "startTime": 0, "endTime": 1})
    assert status == 422 and "venIds" in str(bad) and "shed_kw" in str(bad)
    assert "ok" not in {v["registrationId"] for v in cloud.get("/api/vens/")[1]}


def test_metering_is_stored_one_seed_shaped_row_per_message(platform: Platform, cloud: CloudBackend) -> None:
    since = time.time()
    rows = wait_until(lambda: (r := [x for x in cloud.readings(THING, 200) if x["received_ts"] >= since])
                      and len(r) >= 3 and r, 20, 0.5, "three readings stored by the backend")
    assert all(r["venId"] == THING and "power_kw" in r and "circuits" in r for r in rows)
    assert len({r["seq"] for r in rows}) == len(rows), "one row per reading"
    _status, health = cloud.get("/health")
    assert health["counters"].get("rejected", 0) == 0, cloud.get("/api/rejected")[1][:3]


def test_an_event_created_in_the_backend_is_dispatched_when_it_becomes_active(
        platform: Platform, cloud: CloudBackend, panel: PanelDevice) -> None:
    restore_idle(platform)
    start = time.time() + 12
    status, event = cloud.request("POST", "/api/events/", {"venIds": [THING], "shed_kw": 2.0, "startTime": start,
                                                            "endTime": start + 120})
    assert status == 201 and event["status"] == "active"
    assert not cloud.get(f"/api/dispatches?event_id={event['event_id']}")[1], "nothing sent before startTime"
    dispatched = wait_until(lambda: cloud.get(f"/api/dispatches?event_id={event['event_id']}")[1], 40, 0.5,
                            "the EventCommandService dispatching the event")
    delay = dispatched[0]["sent_ts"] - start
    wait_relays(panel, {"Heater": False}, timeout=20)
    correlation_id = dispatched[0]["correlation_id"]
    ack = wait_until(lambda: cloud.get(f"/api/acks?correlationId={correlation_id}")[1], 20, 0.5,
                     "the VEN's ack stored against the command")[0]["doc"]
    assert ack["status"] == "accepted" and ack["event_id"] == event["event_id"] and ack["actual_shed_kw"] >= 2.0 - 0.3
    print(f"backend event dispatched {delay:.1f} s after its startTime; the VEN acked and shed")
    # Cancelled in the backend: the VENs that got it are told to cancel it.
    status, cancelled = cloud.request("DELETE", f"/api/events/{event['event_id']}")
    assert status == 200 and cancelled["status"] == "cancelled"
    wait_relays(panel, {"Heater": True}, timeout=30)
    assert platform.rpc("ven.agent", "get_status")["active_event"] is None
