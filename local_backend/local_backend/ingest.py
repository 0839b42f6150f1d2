"""What the backend does with each MQTT message, as the guide's IoT rule + consumer do.

* ``volttron/metering``: one row per message, ``venId`` from the payload; a VEN not registered
  is auto-registered on its first reading; a ``(venId, seq)`` already stored is a duplicate
  (counted, not stored twice); a message that is not one seed-shaped reading is stored in
  ``rejected`` with the reason, never dropped silently.
* ``ven/ack/{thing}``: acks and event reports, against the command's correlationId.
* ``ven/telemetry/{thing}``: the bridge's last will (``online: false``) marks the VEN offline;
  anything else from it shows the VEN is alive.

Pure functions of (store, topic, payload, now): tested without a broker.
"""

from __future__ import annotations

import json
from typing import Any

from ven_common.contract import MqttTopics, seed_reading_problem

from local_backend.store import Store

# Every thing's topics, from the contract: what the backend subscribes to and how it reads the thing back.
EVERY_THING = MqttTopics("+")
SUBSCRIPTIONS = (EVERY_THING.metering, EVERY_THING.ack, EVERY_THING.telemetry)


def _decode(payload: bytes) -> tuple[Any, str | None]:
    try:
        return json.loads(payload), None
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"not JSON: {exc}"[:200]


def _auto_register(store: Store, ven_id: str, now: float) -> None:
    if store.ven(ven_id) is None:
        store.register(ven_id, f"VEN {ven_id}", "online", None, None, now, auto=True)
        store.bump("auto_registered")


def _rejected(store: Store, topic: str, reason: str, payload: bytes, now: float) -> str:
    store.reject(topic, reason, payload, now)
    store.bump("rejected")
    return f"rejected: {reason}"


def _counted(store: Store, added: bool, counter: str) -> str:
    """A row stored (counted under ``counter``), or a duplicate of one (counted as such)."""
    store.bump(counter if added else "duplicates")
    return "stored" if added else "duplicate"


def handle(store: Store, topic: str, payload: bytes, now: float) -> str:
    """Store one message; returns what happened (``stored``, ``duplicate``, ``rejected: ...``)."""
    body, error = _decode(payload)
    if topic == EVERY_THING.metering:
        problem = error or seed_reading_problem(body)
        if problem is not None:
            return _rejected(store, topic, problem, payload, now)
        ven_id = body["venId"]
        _auto_register(store, ven_id, now)
        store.seen(ven_id, now)
        return _counted(store, store.add_reading(ven_id, body, now), "readings")
    if (ven_id := EVERY_THING.thing_of(topic, EVERY_THING.ack_prefix)) is not None:
        if error or not isinstance(body, dict):
            return _rejected(store, topic, error or "not a JSON object", payload, now)
        if store.ven(ven_id):
            store.seen(ven_id, now)
        return _counted(store, store.add_ack(ven_id, body, now), "acks")
    if (ven_id := EVERY_THING.thing_of(topic, EVERY_THING.telemetry_prefix)) is not None:
        if isinstance(body, dict) and body.get("online") is False:
            store.will(ven_id, now)
            return "offline"
        if store.ven(ven_id):
            store.seen(ven_id, now)
        return "seen"
    return "ignored"


def online(ven: dict[str, Any], now: float, fresh_sec: float) -> bool:
    """A VEN is online while its telemetry is fresh and its last will has not fired since."""
    seen = ven.get("last_seen_ts")
    if seen is None or now - seen > fresh_sec:
        return False
    will = ven.get("will_ts")
    return will is None or will < seen
