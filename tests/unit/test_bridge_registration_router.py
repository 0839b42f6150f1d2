from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pytest

from ven_common.contract import MqttTopics, registration_body

from backendbridge.bridge import CommandPipeline, Routed, route_bus_message
from backendbridge.errors import VenFailed, VenUnreachable
from backendbridge.registration import RegistrationPolicy, classify, register_once, registration_url

THING = "volttron_thing"
TOPICS = MqttTopics(THING)


@dataclass
class Resp:
    status_code: int
    text: str = ""


def test_register_once_posts_the_seed_body() -> None:
    calls: list[tuple[str, Any, float]] = []

    def post(url: str, json: Any, timeout: float) -> Resp:
        calls.append((url, json, timeout))
        return Resp(201)

    result = register_once(post, "http://backend:8000/", THING, timeout=3.0)
    assert result.ok and not result.retry
    assert calls == [("http://backend:8000/api/vens/", registration_body(THING), 3.0)]


def test_register_once_errors_are_results() -> None:
    def boom(url: str, json: Any, timeout: float) -> Resp:
        raise ConnectionError("refused")

    r = register_once(boom, "http://b", THING)
    assert not r.ok and r.retry and "ConnectionError" in r.detail
    assert classify(409).ok
    assert classify(503).retry and classify(429).retry
    assert not classify(400).retry and not classify(400).ok
    assert registration_url("http://b/") == "http://b/api/vens/"


def test_registration_schedule_is_capped_full_jitter() -> None:
    policy = RegistrationPolicy(1.0, 60.0, random.Random(3))
    delays = [policy.next_delay() for _ in range(20)]
    assert all(0 <= d <= 60 for d in delays) and policy.attempts == 20


def test_routing() -> None:
    r = route_bus_message("ven/metering", {"power_kw": 1}, TOPICS)
    assert r == Routed("metering", "volttron/metering", {"power_kw": 1, "venId": THING})
    r = route_bus_message("ven/ack", {"status": "accepted", "source": "rpc"}, TOPICS)
    assert isinstance(r, Routed) and r.topic == f"ven/ack/{THING}"
    assert isinstance(route_bus_message("ven/ack", {"status": "accepted", "source": "mqtt"}, TOPICS), str)
    r = route_bus_message("ven/event/report", json.dumps({"event_id": "e"}), TOPICS)
    assert isinstance(r, Routed) and r.topic == f"ven/ack/{THING}" and r.payload["type"] == "event_report"
    r = route_bus_message("ven/event/state", {"state": "active"}, TOPICS)
    assert isinstance(r, Routed) and r.topic == f"ven/telemetry/{THING}" and r.payload["type"] == "event_state"
    r = route_bus_message("ven/actuation", {"circuit": "HVAC"}, TOPICS)
    assert isinstance(r, Routed) and r.payload["type"] == "actuation"
    assert isinstance(route_bus_message("ven/metering", [1, 2], TOPICS), str)
    assert isinstance(route_bus_message("ven/other", {}, TOPICS), str)


def test_pipeline_gives_exactly_one_ack_per_command_or_raises() -> None:
    """Every command ends in one ack to queue, or an exception (then the shell does not PUBACK)."""
    p = CommandPipeline(THING, clock=lambda: 5.0)
    raw = json.dumps({"op": "restore", "correlationId": "r1", "venId": THING}).encode()
    sent: list[dict[str, Any]] = []

    def ven(command: dict[str, Any]) -> Any:
        sent.append(command)
        return {"op": "restore", "status": "accepted", "ts": 1, "correlationId": "r1"}

    ack, cid = p.process(raw, ven)
    assert cid == "r1" and ack["status"] == "accepted" and ack["venId"] == THING
    # A re-sent command reaches the VEN again (its idempotency replays the stored ack).
    p.process(raw, ven)
    assert len(sent) == 2 and p.forwarded == 2

    bad, _ = p.process(b"[]", ven)
    assert bad["reason_code"] == "not_an_object" and p.rejected == 1 and len(sent) == 2

    def down(command: dict[str, Any]) -> Any:
        raise VenUnreachable("no answer within 8 s")
    ack, _ = p.process(raw, down)
    assert ack["reason_code"] == "not_ready" and ack["correlationId"] == "r1" and "8 s" in ack["reason"]

    def broken(command: dict[str, Any]) -> Any:
        raise VenFailed("ZeroDivisionError('x')")
    ack, _ = p.process(raw, broken)
    assert ack["reason_code"] == "internal" and "ZeroDivisionError" in ack["reason"]
    assert p.process(raw, lambda c: None)[0]["reason_code"] == "internal"
    assert (p.not_ready, p.internal) == (1, 2)

    def bug(command: dict[str, Any]) -> Any:
        raise RuntimeError("a bug in the shell")
    with pytest.raises(RuntimeError, match="a bug in the shell"):
        p.process(raw, bug)


@pytest.mark.parametrize("message", [None, 5, "not json", b"[1]"])
def test_router_never_raises(message: Any) -> None:
    assert isinstance(route_bus_message("ven/metering", message, TOPICS), str)
