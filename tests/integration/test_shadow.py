"""The device shadow on the broker: reported state follows the VEN, desired settings are applied
through the config store and echoed back."""

from __future__ import annotations

import json

import pytest

from tests.support.backend import Backend
from tests.support.system import Platform, wait_until
from tests.support.ven_checks import TOPICS, ack_for, restore_idle, send_event
from ven_common.contract import AWS_MAX_SHADOW_BYTES

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


def test_desired_metering_interval_is_applied_and_echoed(platform: Platform, backend: Backend) -> None:
    before = json.loads(platform.vctl("config", "get", "ven.agent", "config").stdout)
    try:
        backend.publish(TOPICS.shadow_update_delta, {"state": {"metering_interval_sec": 2}, "version": 7})
        wait_until(lambda: json.loads(platform.vctl("config", "get", "ven.agent", "config").stdout)
                   ["metering_interval_sec"] == 2, 20, 0.5, "the desired interval in the config store")
        backend.wait_json(TOPICS.shadow_update, lambda d: d.get("state", {}).get("reported", {})
                          .get("metering_interval_sec") == 2, timeout=20)
        backend.publish(TOPICS.shadow_update_delta, {"state": {"metering_interval_sec": -5, "rm_rf": True}})
        refused = backend.wait_json(TOPICS.shadow_update, lambda d: "desired_refused" in d.get("state", {})
                                    .get("reported", {}), timeout=20)
        assert "rm_rf" in refused["state"]["reported"]["desired_refused"]
        assert json.loads(platform.vctl("config", "get", "ven.agent", "config").stdout)["metering_interval_sec"] == 2
    finally:
        backend.publish(TOPICS.shadow_update_delta,
                        {"state": {"metering_interval_sec": before.get("metering_interval_sec", 1.0)}})
        wait_until(lambda: json.loads(platform.vctl("config", "get", "ven.agent", "config").stdout)
                   ["metering_interval_sec"] == before.get("metering_interval_sec", 1.0), 20, 0.5, "interval reset")
