"""The wire contract shared by the VenAgent, the BackendBridgeAgent, the scripts and the tests.

Every topic name, identity and payload field that crosses a process boundary is defined here once. The MQTT
side is byte-compatible with the seed's ``docs/operations-guide.md``: fields are only ever added, never renamed.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, cast

DEFAULT_THING_NAME = "volttron_thing"
THING_NAME_ENV = "IOT_THING_NAME"


# The VEN answers a command once the driver answered its writes (at most driver_timeout_sec) plus its own work;
# the bridge waits rpc_timeout_sec for it, or answers not_ready for a command the VEN then carries out. Checked
# where both configurations meet (render_configs.py); the defaults are read by both agents' config models.
COMMAND_ANSWER_MARGIN_SEC = 2.0
DEFAULT_DRIVER_TIMEOUT_SEC = 3.0
DEFAULT_RPC_TIMEOUT_SEC = 8.0


def timeout_order_problem(rpc_timeout_sec: float, driver_timeout_sec: float) -> str | None:
    """Why the bridge's RPC timeout is too short for the VEN's driver timeout, or None."""
    if rpc_timeout_sec >= driver_timeout_sec + COMMAND_ANSWER_MARGIN_SEC:
        return None
    return (f"the bridge's rpc_timeout_sec ({rpc_timeout_sec:g}) must be at least the VEN's driver_timeout_sec "
            f"({driver_timeout_sec:g}) + {COMMAND_ANSWER_MARGIN_SEC:g} s, or the bridge answers not_ready for commands the "
            "VEN then carries out: raise rpc_timeout_sec in config/bridge.json or lower driver_timeout_sec in "
            "config/ven-agent.json")


def resolve_thing_name(configured: object, environ: Mapping[str, str]) -> object:
    """The one rule for the thing name, in both agents and the tools: ``IOT_THING_NAME`` when set (the
    deployment's knob, like ``IOT_ENDPOINT``), else the configured value, else the default. Returned as given
    (not validated): each agent's configuration validation judges it."""
    env = environ.get(THING_NAME_ENV)
    if env:
        return env
    return DEFAULT_THING_NAME if configured is None else configured
BACKEND_IDENTITY = "cloud_backend"
# The local Device Shadow service stand-in's certificate CN (local_backend/shadow_service.py).
SHADOW_SERVICE_IDENTITY = "shadow_service"

# VOLTTRON identities of the two agents and of the driver they talk to.
VEN_IDENTITY = "ven.agent"
BRIDGE_IDENTITY = "ven.bridge"
DRIVER_IDENTITY = "platform.driver"

# AWS IoT Core limits (AWS IoT developer guide, "AWS IoT Core quotas").
AWS_MAX_PAYLOAD_BYTES = 128 * 1024
AWS_MAX_TOPIC_BYTES = 256
AWS_MAX_TOPIC_SLASHES = 7
AWS_MAX_QOS = 1
AWS_MAX_PUBLISH_PER_SECOND = 100
AWS_MAX_SHADOW_BYTES = 8 * 1024
AWS_MAX_JSON_DEPTH = 8
AWS_MAX_INFLIGHT = 100
AWS_MAX_FILTERS_PER_SUBSCRIBE = 8

# The ``source`` the bridge passes to ``handle_command``; the VenAgent copies it into the
# ``source`` field of the ack it publishes on ``ven/ack`` so the bridge does not forward the
# same ack twice (it already forwarded the RPC's return value).
ACK_SOURCE_MQTT = "mqtt"


class Op(enum.StrEnum):
    """The ``op`` of a command on ``ven/cmd/{thing}`` (and of its ack)."""

    EVENT = "event"
    """Create or modify (same ``event_id``) a demand-response event."""
    RESTORE = "restore"
    """End the active event now and restore every circuit."""
    CANCEL = "cancel"
    """Cancel an event by ``event_id`` (scheduled or active)."""
    STATUS = "status"
    """Ask for the current status; the ack carries it."""


class AckStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class RejectReason(enum.StrEnum):
    """Machine-readable reasons carried in ``reason_code`` of a rejected ack."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    """JSON nesting deeper than AWS allows for a document (8 levels)."""
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_OP = "unknown_op"
    WRONG_VEN = "wrong_ven"
    UNKNOWN_EVENT = "unknown_event"
    CONFLICT = "conflict"
    CORRELATION_REUSED = "correlation_reused"
    """The correlationId was already used for a different command (the first one's ack stands)."""
    NOT_READY = "not_ready"
    INTERNAL = "internal"


class EventState(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


METERING_TOPIC = "volttron/metering"
# AWS IoT's reserved prefix of the Device Shadow service's topics.
SHADOW_THINGS_PREFIX = "$aws/things/"


@dataclass(frozen=True)
class MqttTopics:
    """The MQTT topics of one thing, as in the seed's topic table: the one place every process (the bridge, the
    tools, the backend and shadow stand-ins, the broker's ACL) takes a topic name from. ``thing`` may be a
    pattern: ``MqttTopics("+")`` for a subscription to every thing, ``MqttTopics("%u")`` for mosquitto's ACL."""

    thing: str
    metering: str = METERING_TOPIC
    cmd_prefix: str = "ven/cmd"
    ack_prefix: str = "ven/ack"
    telemetry_prefix: str = "ven/telemetry"

    @property
    def cmd(self) -> str:
        return f"{self.cmd_prefix}/{self.thing}"

    @property
    def ack(self) -> str:
        return f"{self.ack_prefix}/{self.thing}"

    @property
    def telemetry(self) -> str:
        return f"{self.telemetry_prefix}/{self.thing}"

    @property
    def shadow_prefix(self) -> str:
        return f"{SHADOW_THINGS_PREFIX}{self.thing}/shadow"

    @property
    def shadow_update(self) -> str:
        return f"{self.shadow_prefix}/update"

    @property
    def shadow_update_delta(self) -> str:
        return f"{self.shadow_prefix}/update/delta"

    @property
    def shadow_update_accepted(self) -> str:
        return f"{self.shadow_prefix}/update/accepted"

    @property
    def shadow_update_rejected(self) -> str:
        return f"{self.shadow_prefix}/update/rejected"

    @property
    def shadow_get(self) -> str:
        return f"{self.shadow_prefix}/get"

    @property
    def shadow_get_accepted(self) -> str:
        return f"{self.shadow_prefix}/get/accepted"

    @property
    def shadow_delete(self) -> str:
        return f"{self.shadow_prefix}/delete"

    @property
    def shadow_all(self) -> str:
        """Every topic of the thing's shadow (a subscription filter)."""
        return f"{self.shadow_prefix}/#"

    def shadow(self, suffix: str) -> str:
        """``$aws/things/{thing}/shadow/{suffix}``: an answer topic (``update/accepted``, ``get/rejected``, …)."""
        return f"{self.shadow_prefix}/{suffix}"

    def thing_of(self, topic: str, prefix: str) -> str | None:
        """The thing a per-thing topic names (``ven/ack/x`` with prefix ``ack_prefix`` → ``x``), else None."""
        head = f"{prefix}/"
        return topic[len(head):] if topic.startswith(head) and "/" not in topic[len(head):] else None


class BusTopics:
    """VOLTTRON pubsub topics the VenAgent and the bridge publish (documented in the README)."""

    METERING = "ven/metering"
    """One reading per metering interval: a :class:`Reading`."""
    ACK = "ven/ack"
    """Every :class:`Ack` the VenAgent produced, whatever the entry point (MQTT, RPC)."""
    EVENT_STATE = "ven/event/state"
    """An event changed state (scheduled, active, completed, cancelled)."""
    REPORT = "ven/event/report"
    """The M&V completion report of an event."""
    STATUS = "ven/status"
    """The seed's shadow shape, on change."""
    ACTUATION = "ven/actuation"
    """What the VenAgent wrote to the driver and why (it replaces the driver's actuator topics)."""
    DEVICE_FAULT = "ven/device/fault"
    """A device stopped giving fresh readings or refused a write (``state: begin``), or recovered
    (``state: end``)."""
    BRIDGE_STATUS = "ven/bridge/status"
    """The bridge's connection and queue state, periodically."""


# -- the payload shapes ------------------------------------------------------------------
# TypedDicts: at run time they are the plain dicts that go on the wire (the JSON does not change);
# to the type checker they name every field. ``NotRequired`` fields are our additions to the
# seed's shapes, present when they apply.


class Ack(TypedDict):
    """An ack on ``ven/ack/{thing}`` (and the return value of ``handle_command``)."""

    op: str | None
    status: str
    """:class:`AckStatus`"""
    event_id: str | None
    requested_shed_kw: float | None
    actual_shed_kw: float | None
    ts: int
    correlationId: str | None
    venId: str
    state: NotRequired[str | None]
    start_ts: NotRequired[float | None]
    end_ts: NotRequired[float | None]
    shortfall_kw: NotRequired[float | None]
    note: NotRequired[str]
    reason: NotRequired[str]
    reason_code: NotRequired[str]
    """:class:`RejectReason`"""
    status_snapshot: NotRequired[dict[str, Any]]
    source: NotRequired[str]
    """On the VOLTTRON bus only: ``mqtt`` or ``rpc`` (the bridge strips it)."""
    seq: NotRequired[int]
    """Added by the bridge, per topic."""


class CircuitReading(TypedDict):
    name: str
    enabled: bool | None
    current_kw: float | None
    stale: NotRequired[bool]


class Reading(TypedDict):
    """One reading on ``volttron/metering`` (the seed's, plus ``quality`` and ``device_faults``)."""

    venId: str
    ts: float
    power_kw: float | None
    """None (null) when no fresh reading exists: ``quality`` is then ``stale``."""
    baseline_kw: float | None
    shed_kw: float | None
    active_event: str | None
    circuits: list[CircuitReading]
    quality: str
    device_faults: NotRequired[list[dict[str, Any]]]
    seq: NotRequired[int]
    """Added by the bridge, per topic."""


_ACK_FIELDS = ("op", "status", "event_id", "requested_shed_kw", "actual_shed_kw", "ts", "correlationId", "venId")


def ack_from_dict(obj: Any) -> Ack | None:
    """``obj`` as an :class:`Ack` when it has the seed's ack fields and a known status, else None."""
    if not isinstance(obj, dict) or any(key not in obj for key in _ACK_FIELDS):
        return None
    if obj["status"] not in (AckStatus.ACCEPTED.value, AckStatus.REJECTED.value) or not isinstance(obj["venId"], str):
        return None
    return cast(Ack, obj)


def reading_from_dict(obj: Any) -> Reading | None:
    """``obj`` as a :class:`Reading` when the seed's pipeline can store it (:func:`seed_reading_problem`)."""
    return None if seed_reading_problem(obj) is not None else cast(Reading, obj)


def is_finite_number(value: Any) -> bool:
    """True for int/float that are not bool, NaN or infinite (JSON allows NaN through Python)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def read_correlation_id(obj: Any) -> str | None:
    """The ``correlationId`` of a command if one can be read as a non-empty string, else None."""
    if isinstance(obj, dict):
        cid = obj.get("correlationId")
        if isinstance(cid, str) and 0 < len(cid) <= 256:
            return cid
    return None


def reject_ack(
    *,
    op: Any,
    correlation_id: str | None,
    reason_code: RejectReason,
    reason: str,
    ts: int,
    ven_id: str,
    event_id: Any = None,
) -> Ack:
    """A rejected ack in the seed's ack shape plus ``reason`` and ``reason_code``."""
    return {
        "op": op if isinstance(op, str) and len(op) <= 64 else None,
        "status": AckStatus.REJECTED.value,
        "event_id": event_id if isinstance(event_id, str) and len(event_id) <= 128 else None,
        "requested_shed_kw": None,
        "actual_shed_kw": None,
        "ts": ts,
        "correlationId": correlation_id,
        "venId": ven_id,
        "reason": reason,
        "reason_code": reason_code.value,
    }


def event_command(
    *,
    correlation_id: str,
    ven_id: str,
    event_id: str,
    shed_kw: float,
    duration_sec: int,
    start_ts: float | None = None,
) -> dict[str, Any]:
    """The seed's DR event command (``start_ts`` is our optional addition: epoch seconds)."""
    cmd: dict[str, Any] = {
        "op": Op.EVENT.value,
        "correlationId": correlation_id,
        "venId": ven_id,
        "event_id": event_id,
        "shed_kw": shed_kw,
        "duration_sec": duration_sec,
    }
    if start_ts is not None:
        cmd["start_ts"] = start_ts
    return cmd


def restore_command(*, correlation_id: str, ven_id: str) -> dict[str, Any]:
    """The seed's restore command."""
    return {"op": Op.RESTORE.value, "correlationId": correlation_id, "venId": ven_id}


def registration_body(thing: str, lat: float = 37.7749, lon: float = -122.4194) -> dict[str, Any]:
    """The seed's ``POST {BACKEND_URL}/api/vens/`` body."""
    return {
        "name": f"VEN {thing}",
        "status": "online",
        "location": {"lat": lat, "lon": lon},
        "registrationId": thing,
    }


def _is_plain_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def seed_reading_problem(body: Any) -> str | None:
    """Why a message on ``volttron/metering`` is not one reading the seed's pipeline (IoT rule ->
    consumer, one row per message, ``venId`` from the payload) can store, or None. Extra fields
    (``seq``, ``quality``, ...) are fine; a changed shape is not. Null kW says "no fresh reading"."""
    if not isinstance(body, dict):
        return "not a JSON object"
    if "readings" in body or body.get("batch"):
        return "a batch of readings, not one reading"
    if not isinstance(body.get("venId"), str) or not body["venId"]:
        return "no venId"
    if not _is_plain_number(body.get("ts")):
        return "no numeric ts"
    for key in ("power_kw", "shed_kw"):
        if key not in body or not (body[key] is None or _is_plain_number(body[key])):
            return f"{key} missing or not a number"
    if "active_event" not in body or not (body["active_event"] is None or isinstance(body["active_event"], str)):
        return "active_event missing or not a string/null"
    return _seed_circuits_problem(body.get("circuits"))


def _seed_circuits_problem(circuits: Any) -> str | None:
    if not isinstance(circuits, list):
        return "circuits missing"
    for c in circuits:
        if not (isinstance(c, dict) and isinstance(c.get("name"), str) and "enabled" in c and "current_kw" in c):
            return f"circuit row {c!r} is not {{name, enabled, current_kw}}"
    return None
