"""Security on the real system: per-thing ACL, private keys 0600 and never logged."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from ven_common.contract import MqttTopics

from tests.support.backend import Backend
from tests.support.broker import LocalBroker
from tests.support.system import Platform
from tests.support.ven_checks import THING, TOPICS, cid, handled_so_far, subscribe_and_wait, thing_client

pytestmark = pytest.mark.platform


def test_private_keys_are_0600(certs: Path) -> None:
    keys = sorted(certs.glob("*.key"))
    assert keys
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_private_key_material_appears_in_no_log(platform: Platform, broker: LocalBroker, certs: Path) -> None:
    secret_lines = [line for line in (certs / "client.key").read_text().splitlines() if "-----" not in line]
    logs = [platform.log, platform.log.with_suffix(".out"), broker.log_path]
    text = "".join(p.read_text(errors="replace") for p in logs if p.exists())
    assert "PRIVATE KEY" not in text
    assert not any(line in text for line in secret_lines[:5])


def test_another_thing_cannot_receive_our_commands(broker: LocalBroker, certs: Path, backend: Backend) -> None:
    got: list[tuple[str, bytes]] = []
    fence_seen = threading.Event()
    fence = cid().encode()
    own_cmd = MqttTopics("other_thing").cmd

    def on_message(client: object, userdata: object, m: object) -> None:
        if m.topic == own_cmd and m.payload == fence:  # type: ignore[attr-defined]
            fence_seen.set()
        else:
            got.append((m.topic, m.payload))  # type: ignore[attr-defined]

    other = thing_client(certs, broker.port, "other_thing", "other_thing")
    other.on_message = on_message
    try:
        # mosquitto grants the SUBACK but never delivers outside the ACL: assert on delivery.
        subscribe_and_wait(other, [(TOPICS.cmd, 1), ("ven/ack/#", 1), (own_cmd, 1)])
        handled_so_far(backend)  # our commands and acks have passed through the broker
        # A fence on the other thing's own topic, published after them: once it arrives, anything
        # the broker would have leaked to this client has arrived before it (one ordered session).
        backend.publish(own_cmd, fence)
        assert fence_seen.wait(10), "the other thing's own command topic is not delivered: the test is blind"
    finally:
        other.disconnect()
        other.loop_stop()
    assert not got, f"another thing received {got[:1]}"


@pytest.mark.parametrize("cert_name, client_id", [
    ("other_thing", "other_thing"),   # another thing commanding ours
    ("client", "forger"),             # our own certificate: the device may only read its command topic
])
def test_only_the_backend_may_publish_our_commands(broker: LocalBroker, certs: Path, backend: Backend,
                                                     cert_name: str, client_id: str) -> None:
    sender = thing_client(certs, broker.port, cert_name, client_id)
    c = cid()
    sender.publish(TOPICS.cmd, json.dumps({"op": "status", "correlationId": c, "venId": THING}),
                   qos=1).wait_for_publish(5)
    handled_so_far(backend)
    sender.disconnect()
    sender.loop_stop()
    assert not [m for m in backend.on_topic(TOPICS.ack) if c.encode() in m.payload]
