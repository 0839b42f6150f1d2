"""Pure decisions of the bridge: which bus message goes where, and the command pipeline.

Kept out of agent.py so every rule is unit-testable without VOLTTRON or gevent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ven_common.contract import (
    ACK_SOURCE_MQTT,
    BusTopics,
    MqttTopics,
    RejectReason,
    reject_ack,
)

from backendbridge.batching import KIND_ACK, KIND_METERING, KIND_TELEMETRY
from backendbridge.dedupe import CommandDeduper
from backendbridge.envelope import EnvelopeChecker

FORWARDED_BUS_TOPICS = (
    BusTopics.METERING,
    BusTopics.ACK,
    BusTopics.REPORT,
    BusTopics.EVENT_STATE,
    BusTopics.ACTUATION,
)


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
    if bus_topic in (BusTopics.EVENT_STATE, BusTopics.ACTUATION):
        body.setdefault("venId", topics.thing)
        body.setdefault("type", "event_state" if bus_topic == BusTopics.EVENT_STATE else "actuation")
        return Routed(KIND_TELEMETRY, topics.telemetry, body)
    return f"topic {bus_topic!r} is not forwarded"


@dataclass(frozen=True)
class Admission:
    action: Literal["reject", "duplicate", "forward"]
    command: dict[str, Any] | None = None
    ack: dict[str, Any] | None = None
    correlation_id: str | None = None


class CommandPipeline:
    """envelope check -> de-duplication -> (shell: RPC to the VEN) -> the ack to publish."""

    def __init__(self, thing: str, *, dedupe_capacity: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self.thing = thing
        self._clock = clock
        self.checker = EnvelopeChecker(thing, clock=clock)
        self.deduper = CommandDeduper(dedupe_capacity)
        self.forwarded = 0
        self.not_ready = 0

    @property
    def rejected(self) -> int:
        return sum(self.checker.rejected.values())

    def admit(self, raw: bytes) -> Admission:
        verdict = self.checker.check(raw)
        if not verdict.accepted:
            return Admission("reject", ack=verdict.reject, correlation_id=verdict.correlation_id)
        if self.deduper.is_duplicate(raw, verdict.correlation_id):
            return Admission("duplicate", command=verdict.command, correlation_id=verdict.correlation_id)
        self.forwarded += 1
        return Admission("forward", command=verdict.command, correlation_id=verdict.correlation_id)

    def ack_from_result(self, command: Mapping[str, Any], result: Any) -> dict[str, Any]:
        """The VEN's ack as returned by ``handle_command``; a non-dict is an internal error."""
        if isinstance(result, Mapping):
            ack = dict(result)
            ack.setdefault("correlationId", command.get("correlationId"))
            ack.setdefault("venId", self.thing)
            return ack
        return reject_ack(
            op=command.get("op"),
            correlation_id=command.get("correlationId"),
            reason_code=RejectReason.INTERNAL,
            reason=f"VEN returned {type(result).__name__} instead of an ack",
            ts=int(self._clock()),
            ven_id=self.thing,
            event_id=command.get("event_id"),
        )

    def ack_unreachable(self, raw: bytes, command: Mapping[str, Any], error: str) -> dict[str, Any]:
        """not_ready ack; the command is forgotten by the de-duplicator so a retry works."""
        self.not_ready += 1
        cid = command.get("correlationId")
        self.deduper.forget(raw, cid if isinstance(cid, str) else None)
        return reject_ack(
            op=command.get("op"),
            correlation_id=cid if isinstance(cid, str) else None,
            reason_code=RejectReason.NOT_READY,
            reason=f"VEN agent unreachable: {error}"[:300],
            ts=int(self._clock()),
            ven_id=self.thing,
            event_id=command.get("event_id"),
        )
