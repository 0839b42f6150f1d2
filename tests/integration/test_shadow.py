"""The device shadow on the broker: reported state follows the VEN, desired settings are applied
through the config store and echoed back."""

from __future__ import annotations

import json
import time

import pytest

from ven_common.contract import AWS_MAX_SHADOW_BYTES

from tests.support.backend import Backend
from tests.support.cloud import ShadowService
from tests.support.system import Platform, wait_until
from tests.support.ven_checks import TOPICS, ack_for, restore_idle, send_event

pytestmark = pytest.mark.platform


def test_reported_shadow_follows_an_event(platform: Platform, backend: Backend) -> None:
    restore_idle(platform)
    c = send_event(backend, 2.0, 60)
    ack_for(backend, c)

    def shows_event(doc: dict) -> bool:
        reported = doc.get("state", {}).get("reported", {})
        event = reported.get("active_event") or {}
        return event.get("event_id") == f"evt-{c}"
    doc = backend.wait_json(TOPICS.shadow_update, shows_event, timeout=20)
    reported = doc["state"]["reported"]
    assert reported["online"] is True and isinstance(reported["shed_kw"], (int, float))
    assert {"name", "enabled", "current_kw"} <= set(reported["circuits"][0])
    assert "bridge" in reported
    raw = next(m.payload for m in reversed(backend.on_topic(TOPICS.shadow_update)))
    assert len(raw) <= AWS_MAX_SHADOW_BYTES
    restore_idle(platform)


def _shadow_get(backend: Backend) -> dict:
    token = f"get-{time.time_ns()}"
    since = time.time()
    backend.publish(TOPICS.shadow_get, {"clientToken": token})
    return backend.wait_json(TOPICS.shadow_get_accepted, lambda d: d.get("clientToken") == token, since=since)


def _interval(platform: Platform) -> float:
    return json.loads(platform.vctl("config", "get", "ven.agent", "config").stdout)["metering_interval_sec"]


def test_desired_setting_goes_through_the_shadow_service_and_comes_back_reported(
        platform: Platform, backend: Backend, shadows: ShadowService) -> None:
    """The backend writes ``desired`` on the shadow service; its delta reaches the VEN, which
    applies it through the config store; the shadow then holds it as ``reported`` (no delta)."""
    before = _interval(platform)
    desired_topic = TOPICS.shadow_update
    try:
        backend.publish(desired_topic, {"state": {"desired": {"metering_interval_sec": 2}}, "clientToken": "set-2"})
        wait_until(lambda: _interval(platform) == 2, 20, 0.5, "the desired interval in the VEN's config store")
        doc = wait_until(lambda: (d := _shadow_get(backend)) and d["state"].get("reported", {})
                         .get("metering_interval_sec") == 2 and "delta" not in d["state"] and d, 30, 1.0,
                         "the shadow service holding the setting as reported, with no delta left")
        assert doc["state"]["desired"]["metering_interval_sec"] == 2
        assert doc["metadata"]["reported"]["metering_interval_sec"]["timestamp"] >= int(time.time()) - 60
        # A setting the VEN refuses stays in the delta and is named in reported.desired_refused.
        backend.publish(desired_topic, {"state": {"desired": {"metering_interval_sec": -5, "rm_rf": True}}})
        refused = wait_until(lambda: (d := _shadow_get(backend)) and "rm_rf" in (d["state"].get("reported", {})
                             .get("desired_refused") or {}) and d, 30, 1.0, "the refusal reported")
        assert refused["state"]["delta"]["rm_rf"] is True and _interval(platform) == 2
        # A setting the bridge passes but the VEN refuses: the VEN's own reason reaches the shadow, as the backend
        # reads it (unknown circuits are named; known ones in the same setting are applied).
        backend.publish(desired_topic, {"state": {"desired": {"circuit_priorities": {"Sauna": 1}}}})
        why = wait_until(lambda: ((_shadow_get(backend)["state"].get("reported", {}).get("desired_refused") or {})
                                  .get("circuit_priorities")), 30, 1.0, "the VEN's reason reported")
        assert "unknown circuit(s): Sauna" in why, why
        # An update with a stale version is refused by the service (AWS's 409) and changes nothing.
        version = _shadow_get(backend)["version"]
        since = time.time()
        backend.publish(desired_topic, {"state": {"desired": {"metering_interval_sec": 3}}, "version": version - 1,
                                        "clientToken": "stale"})
        rejected = backend.wait_json(TOPICS.shadow_update_rejected, lambda d: d.get("clientToken") == "stale",
                                     since=since)
        assert rejected["code"] == 409 and rejected["message"] == "Version conflict"
        assert _shadow_get(backend)["state"]["desired"]["metering_interval_sec"] == -5
    finally:
        backend.publish(desired_topic, {"state": {"desired": {"metering_interval_sec": before, "rm_rf": None,
                                                              "circuit_priorities": None}}})
        wait_until(lambda: _interval(platform) == before, 20, 0.5, "interval reset")
