"""The bridge's shell in-process, beside a real VenAgent: bus -> outbox, a command, a shadow delta."""

from __future__ import annotations

import json
from typing import Any

from harness import FakeDriver, wait_for
from volttrontesting.server_mock import TestServer

from ven_common.contract import BusTopics


def queued(bridge: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(item.topic, item.payload) for item in bridge._runtime.outbox.peek(1000)]


def test_the_vens_metering_reaches_the_outbox_numbered(bridge: Any, ven: Any, server: TestServer,
                                                       driver: FakeDriver) -> None:
    driver.publish_all(server)
    driver.publish_all(server)
    rows = wait_for(lambda: [p for t, p in queued(bridge) if t == "volttron/metering"])
    assert rows and rows[0]["venId"] == "volttron_thing" and "power_kw" in rows[0]
    # the cursor follows the VEN's journal
    assert bridge._runtime.journal.cursor is not None and bridge._runtime.journal.cursor[0] == ven._journal.epoch


def test_a_cloud_command_goes_to_the_ven_and_its_ack_is_queued_before_the_puback(bridge: Any, ven: Any,
                                                                                 server: TestServer,
                                                                                 driver: FakeDriver) -> None:
    driver.publish_all(server)
    # What the outbox (on disk) held at the moment the PUBACK was released: the ack must be in it.
    pubacked: list[list[str]] = []
    raw = json.dumps({"op": "event", "correlationId": "c-br", "venId": "volttron_thing", "event_id": "evt-br",
                      "shed_kw": 1.5, "duration_sec": 120}).encode()
    bridge._runtime.on_command(raw, False, lambda: pubacked.append([t for t, _ in queued(bridge)]))
    acks = wait_for(lambda: [p for t, p in queued(bridge) if t == "ven/ack/volttron_thing"])
    assert "ven/ack/volttron_thing" in wait_for(lambda: pubacked)[0], "PUBACK released before the ack was on disk"
    assert acks[0]["correlationId"] == "c-br" and acks[0]["status"] == "accepted" and "source" not in acks[0]
    assert ven.get_status()["active_event"]["event_id"] == "evt-br"
    # the VEN's own bus ack of an MQTT command is not forwarded twice
    gevent_acks = [m for m in server.get_published_messages() if m.topic == BusTopics.ACK]
    assert gevent_acks and len([t for t, _ in queued(bridge) if t == "ven/ack/volttron_thing"]) == 1


def test_a_malformed_command_is_rejected_at_the_bridge(bridge: Any) -> None:
    bridge._runtime.on_command(b'{"op": ', False, None)
    acks = wait_for(lambda: [p for t, p in queued(bridge) if t == "ven/ack/volttron_thing"])
    assert acks[0]["reason_code"] == "malformed_json" and acks[0]["correlationId"] is None
    assert bridge.get_status()["rejected_by_reason"] == {"malformed_json": 1}


def test_a_shadow_delta_is_applied_by_the_ven_and_reported_back(bridge: Any, ven: Any) -> None:
    bridge._runtime.on_shadow_delta({"state": {"metering_interval_sec": 4}, "version": 9})

    def reported() -> list[dict[str, Any]]:
        return [p["state"]["reported"] for t, p in queued(bridge)
                if t.endswith("/shadow/update") and p["state"]["reported"].get("metering_interval_sec") == 4]

    assert wait_for(reported)
    assert ven.config.metering_interval_sec == 4


def test_status_rpc_and_no_broker(bridge: Any) -> None:
    status = bridge.get_status()
    assert status["connected"] is False and status["cert_errors"] == ["in-process test: no broker"]
    assert bridge.flush_now()["queue_depth"] == status["queue_depth"]
    assert bridge.register() == {"ok": False, "detail": "BACKEND_URL is not configured"}
