"""Pure decisions of the bridge: which bus message goes where, and the command pipeline.

Kept out of agent.py so every rule is unit-testable without VOLTTRON or gevent.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ven_common.contract import (
    ACK_SOURCE_MQTT,
    BusTopics,
    MqttTopics,
    RejectReason,
    read_correlation_id,
    reject_ack,
)

from backendbridge.batching import KIND_ACK, KIND_METERING, KIND_TELEMETRY
from backendbridge.envelope import EnvelopeChecker
from backendbridge.errors import VenFailed, VenUnreachable

_log = logging.getLogger(__name__)

FORWARDED_BUS_TOPICS = (
    BusTopics.METERING,
    BusTopics.ACK,
    BusTopics.REPORT,
    BusTopics.EVENT_STATE,
    BusTopics.ACTUATION,
    BusTopics.DEVICE_FAULT,
)
_TELEMETRY_TYPES = {
    BusTopics.EVENT_STATE: "event_state",
    BusTopics.ACTUATION: "actuation",
    BusTopics.DEVICE_FAULT: "device_fault",
}


@dataclass(frozen=True)
class Routed:
    kind: str
    topic: str
    payload: dict[str, Any]


def coerce_message(message: Any) -> dict[str, Any] | None:
    """Bus messages are dicts; a JSON string holding an object is accepted too."""
    if isinstance(message, Mapping):
        return dict(message)
    if isinstance(message, (str, bytes)):
        try:
            obj = json.loads(message)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None
    return None


def route_bus_message(bus_topic: str, message: Any, topics: MqttTopics) -> Routed | str:
    """Where a bus message goes on MQTT, or the reason it is not forwarded."""
    body = coerce_message(message)
    if body is None:
        return "not a JSON object"
    if bus_topic == BusTopics.METERING:
        body.setdefault("venId", topics.thing)
        return Routed(KIND_METERING, topics.metering, body)
    if bus_topic == BusTopics.ACK:
        if body.get("source") == ACK_SOURCE_MQTT:
            # Already forwarded from the handle_command RPC's return value.
            return "ack of an MQTT command (forwarded from the RPC result)"
        body.setdefault("venId", topics.thing)
        return Routed(KIND_ACK, topics.ack, body)
    if bus_topic == BusTopics.REPORT:
        body.setdefault("venId", topics.thing)
        body.setdefault("type", "event_report")
        return Routed(KIND_ACK, topics.ack, body)
    if bus_topic in _TELEMETRY_TYPES:
        body.setdefault("venId", topics.thing)
        body.setdefault("type", _TELEMETRY_TYPES[bus_topic])
        return Routed(KIND_TELEMETRY, topics.telemetry, body)
    return f"topic {bus_topic!r} is not forwarded"


class CommandPipeline:
    """transport check -> (the VEN: field rules, idempotency, the decision) -> the ack to queue.

    Every raw command yields exactly one ack here; the shell PUBACKs the command only once that
    ack is on disk, so a failure anywhere after this point means a redelivery, never a loss.
    """

    def __init__(self, thing: str, *, clock: Callable[[], float] = time.time) -> None:
        self.thing = thing
        self._clock = clock
        self.checker = EnvelopeChecker(thing, clock=clock)
        self.forwarded = 0
        self.not_ready = 0
        self.internal = 0

    @property
    def rejected(self) -> int:
        return sum(self.checker.rejected.values())

    def process(self, raw: bytes, call_ven: Callable[[dict[str, Any]], Any]) -> tuple[dict[str, Any], str | None]:
        """The ack for ``raw`` and its correlationId; ``call_ven`` raises VenUnreachable/VenFailed."""
        verdict = self.checker.check(raw)
        if verdict.command is None:
            assert verdict.reject is not None
            return verdict.reject, verdict.correlation_id
        command = verdict.command
        self.forwarded += 1
        try:
            result = call_ven(command)
        except VenUnreachable as exc:
            self.not_ready += 1
            return self._error_ack(command, RejectReason.NOT_READY, f"VEN agent unreachable: {exc}"), verdict.correlation_id
        except VenFailed as exc:
            self.internal += 1
            return self._error_ack(command, RejectReason.INTERNAL, f"VEN agent error: {exc}"), verdict.correlation_id
        return self.ack_from_result(command, result), verdict.correlation_id

    def handle(self, raw: bytes, call_ven: Callable[[dict[str, Any]], Any],
               queue_ack: Callable[[dict[str, Any]], None]) -> None:
        """Exactly one ack per command, handed to ``queue_ack`` (which raises if it cannot store it)."""
        started = time.monotonic()
        ack, correlation_id = self.process(raw, call_ven)
        if ack.get("status") == "rejected":
            _log.warning("command %s rejected (%s): %s", correlation_id, ack.get("reason_code"), ack.get("reason"))
        _log.info("command %s %s -> %s in %.1f ms", ack.get("op"), correlation_id, ack.get("status"),
                  (time.monotonic() - started) * 1000)
        queue_ack(ack)

    def ack_from_result(self, command: Mapping[str, Any], result: Any) -> dict[str, Any]:
        """The VEN's ack as returned by ``handle_command``; a non-dict is an internal error."""
        if isinstance(result, Mapping):
            ack = dict(result)
            ack.pop("source", None)
            ack.setdefault("venId", self.thing)
            return ack
        self.internal += 1
        return self._error_ack(command, RejectReason.INTERNAL, f"VEN returned {type(result).__name__} instead of an ack")

    def _error_ack(self, command: Mapping[str, Any], code: RejectReason, reason: str) -> dict[str, Any]:
        return dict(reject_ack(
            op=command.get("op"),
            correlation_id=read_correlation_id(command),
            reason_code=code,
            reason=reason[:300],
            ts=int(self._clock()),
            ven_id=self.thing,
            event_id=command.get("event_id"),
        ))
