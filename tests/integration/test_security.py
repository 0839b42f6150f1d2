"""Security on the real system: per-thing ACL, private keys 0600 and never logged."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.backend import Backend
from tests.support.broker import LocalBroker
from tests.support.system import Platform
from tests.support.ven_checks import THING, TOPICS, cid

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
    got: list[bytes] = []
    other = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="other_thing", protocol=mqtt.MQTTv311)
    other.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / "other_thing.crt"),
                  keyfile=str(certs / "other_thing.key"))
    other.on_message = lambda c, u, m: got.append(m.payload)
    other.connect("localhost", broker.port)
    other.loop_start()
    # mosquitto grants the SUBACK but never delivers outside the ACL: assert on delivery.
    other.subscribe([(TOPICS.cmd, 1), ("ven/ack/#", 1)])
    time.sleep(0.3)
    marker = cid()
    backend.publish(TOPICS.cmd, {"op": "status", "correlationId": marker, "venId": THING})
    backend.wait_json(TOPICS.ack, lambda d: d.get("correlationId") == marker)
    time.sleep(0.3)  # what the other thing could have received would have arrived with the ack
    other.disconnect()
    other.loop_stop()
    assert not got, f"another thing received {got[:1]}"


def test_the_thing_itself_cannot_forge_commands_to_itself(broker: LocalBroker, certs: Path, backend: Backend) -> None:
    """The device certificate may only read its command topic (AWS policy: the cloud commands)."""
    forged = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="forger", protocol=mqtt.MQTTv311)
    forged.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / "client.crt"),
                   keyfile=str(certs / "client.key"))
    forged.connect("localhost", broker.port)
    forged.loop_start()
    c = cid()
    forged.publish(TOPICS.cmd, json.dumps({"op": "status", "correlationId": c, "venId": THING}),
                   qos=1).wait_for_publish(5)
    marker = cid()
    backend.publish(TOPICS.cmd, {"op": "status", "correlationId": marker, "venId": THING})
    backend.wait_json(TOPICS.ack, lambda d: d.get("correlationId") == marker)
    forged.disconnect()
    forged.loop_stop()
    assert not [m for m in backend.on_topic(TOPICS.ack) if c.encode() in m.payload]
