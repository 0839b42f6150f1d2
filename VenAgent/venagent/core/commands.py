"""Parse and validate a raw command (bytes, str or decoded mapping) into a typed command.

Everything that can be checked without engine state is checked here: JSON well-formedness,
shape, types, ranges, the addressed VEN and the time window. Checks that need state (unknown
event, overlap, modifying a finished event) belong to the engine. Parsing never raises: any input
yields either a command or a :class:`Rejection` whose ``reason`` names the field and the rule.

Field rules (seed command shape; ``start_ts`` is our addition):

* ``op``: one of event | restore | cancel | status.
* ``correlationId``: string of 1..256 characters, required for every op.
* ``venId``: optional (null = absent); when present it must equal the configured thing name.
* event: ``event_id`` string 1..128; ``shed_kw`` finite number in (0, max_shed_kw];
  ``duration_sec`` finite number in (0, max_event_duration_sec]; optional ``start_ts`` finite
  epoch seconds, not so far in the past that the window is over, at most max_schedule_ahead_sec
  ahead. A start in the past (window not over) means "start now, keep the original end".
* cancel: ``event_id`` as above.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from ven_common.contract import Op, RejectReason, read_correlation_id
from ven_common.transport import TransportError, decode_object

from venagent.core.config import VenConfig
from venagent.core.errors import CommandRejected

MAX_EVENT_ID_LEN = 128
MAX_CORRELATION_ID_LEN = 256


@dataclass(frozen=True)
class EventCommand:
    correlation_id: str
    event_id: str
    shed_kw: float
    duration_sec: float
    start_ts: float | None
    """As sent (None = immediate); the engine turns it into a window."""


@dataclass(frozen=True)
class RestoreCommand:
    correlation_id: str


@dataclass(frozen=True)
class CancelCommand:
    correlation_id: str
    event_id: str


@dataclass(frozen=True)
class StatusCommand:
    correlation_id: str


Command = EventCommand | RestoreCommand | CancelCommand | StatusCommand


@dataclass(frozen=True)
class Rejection:
    op: Any
    correlation_id: str | None
    event_id: Any
    code: RejectReason
    reason: str


def parse_command(raw: bytes | str | Mapping[str, Any], config: VenConfig, now: float) -> Command | Rejection:
    """Decode then validate (the engine does the two steps apart to check idempotency between)."""
    obj = decode_command(raw)
    return obj if isinstance(obj, Rejection) else validate_command(obj, config, now)


def decode_command(raw: object) -> dict[Any, Any] | Rejection:
    """Raw bytes/str/mapping → a JSON object, or a rejection (no correlationId can be known yet)."""
    try:
        return _decode(raw)
    except CommandRejected as rej:
        return Rejection(None, None, None, rej.code, rej.reason)


def fingerprint(obj: Mapping[Any, Any]) -> str:
    """What makes two commands "the same" for idempotency: their canonical JSON."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def validate_command(obj: dict[Any, Any], config: VenConfig, now: float) -> Command | Rejection:
    try:
        return _validate(obj, config, now)
    except CommandRejected as rej:
        return Rejection(obj.get("op"), read_correlation_id(obj), obj.get("event_id"), rej.code, rej.reason)


def _decode(raw: object) -> dict[Any, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, bytes | bytearray | memoryview | str):
        # The transport rules have one owner, shared with the bridge: same input, same reason.
        obj = decode_object(raw if isinstance(raw, str) else bytes(raw))
        if isinstance(obj, TransportError):
            raise CommandRejected(obj.code, obj.reason)
        return obj
    raise CommandRejected(RejectReason.NOT_AN_OBJECT, f"command must be bytes, str or an object, got {type(raw).__name__}")


def _validate(obj: dict[Any, Any], config: VenConfig, now: float) -> Command:
    op = _op(obj)
    correlation_id = _correlation_id(obj)
    _check_ven(obj, config.thing_name)
    # Exhaustive: an op added to the contract without a command kind here is a type error (mypy), never
    # silently answered as another kind.
    match op:
        case Op.EVENT:
            return _event(obj, correlation_id, config, now)
        case Op.CANCEL:
            return CancelCommand(correlation_id, _event_id(obj))
        case Op.RESTORE:
            return RestoreCommand(correlation_id)
        case Op.STATUS:
            return StatusCommand(correlation_id)
        case _:
            assert_never(op)


def _op(obj: dict[Any, Any]) -> Op:
    allowed = ", ".join(o.value for o in Op)
    if "op" not in obj:
        raise CommandRejected(RejectReason.MISSING_FIELD, f"op is required (one of {allowed})")
    value = obj["op"]
    if not isinstance(value, str):
        raise CommandRejected(RejectReason.WRONG_TYPE, f"op must be a string (one of {allowed}), got {_show(value)}")
    try:
        return Op(value)
    except ValueError:
        raise CommandRejected(RejectReason.UNKNOWN_OP, f"op must be one of {allowed}, got {_show(value)}") from None


def _correlation_id(obj: dict[Any, Any]) -> str:
    return _string(obj, "correlationId", MAX_CORRELATION_ID_LEN)


def _event_id(obj: dict[Any, Any]) -> str:
    return _string(obj, "event_id", MAX_EVENT_ID_LEN)


def _string(obj: dict[Any, Any], field: str, max_len: int) -> str:
    if field not in obj or obj[field] is None:
        raise CommandRejected(RejectReason.MISSING_FIELD, f"{field} is required (a string of 1..{max_len} characters)")
    value = obj[field]
    if not isinstance(value, str):
        raise CommandRejected(RejectReason.WRONG_TYPE, f"{field} must be a string of 1..{max_len} characters, got {_show(value)}")
    if not 0 < len(value) <= max_len:
        raise CommandRejected(RejectReason.OUT_OF_RANGE, f"{field} must be 1..{max_len} characters long, got {len(value)}")
    return value


def _check_ven(obj: dict[Any, Any], thing_name: str) -> None:
    value = obj.get("venId")
    if value is None:
        return
    if not isinstance(value, str):
        raise CommandRejected(RejectReason.WRONG_TYPE, f"venId must be a string, got {_show(value)}")
    if value != thing_name:
        raise CommandRejected(RejectReason.WRONG_VEN, f"venId must be {thing_name!r} (this VEN), got {_show(value)}")


def _event(obj: dict[Any, Any], correlation_id: str, config: VenConfig, now: float) -> EventCommand:
    event_id = _event_id(obj)
    shed_kw = _number(obj, "shed_kw", config.max_shed_kw)
    duration = _number(obj, "duration_sec", config.max_event_duration_sec)
    start = _start_ts(obj, duration, config.max_schedule_ahead_sec, now)
    return EventCommand(correlation_id, event_id, shed_kw, duration, start)


def _number(obj: dict[Any, Any], field: str, upper: float) -> float:
    rule = f"{field} must be a finite number > 0 and <= {upper}"
    if field not in obj or obj[field] is None:
        raise CommandRejected(RejectReason.MISSING_FIELD, f"{field} is required (a finite number > 0 and <= {upper})")
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandRejected(RejectReason.WRONG_TYPE, f"{rule}, got {_show(value)}")
    as_float = _to_float(value)
    if as_float is None or not 0 < as_float <= upper:
        raise CommandRejected(RejectReason.OUT_OF_RANGE, f"{rule}, got {_show(value)}")
    return as_float


def _start_ts(obj: dict[Any, Any], duration: float, ahead: float, now: float) -> float | None:
    value = obj.get("start_ts")
    if value is None:
        return None
    rule = "start_ts must be finite epoch seconds"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandRejected(RejectReason.WRONG_TYPE, f"{rule}, got {_show(value)}")
    start = _to_float(value)
    if start is None:
        raise CommandRejected(RejectReason.OUT_OF_RANGE, f"{rule}, got {_show(value)}")
    if start + duration <= now:
        raise CommandRejected(
            RejectReason.OUT_OF_RANGE,
            f"start_ts + duration_sec must be after now ({now:.0f}): the window [{start:.0f}, {start + duration:.0f}) is over",
        )
    if start - now > ahead:
        raise CommandRejected(
            RejectReason.OUT_OF_RANGE,
            f"start_ts must be at most {ahead} s ahead of now ({now:.0f}), got {start:.0f} ({start - now:.0f} s ahead)",
        )
    return start


def _to_float(value: int | float) -> float | None:
    try:
        as_float = float(value)
    except OverflowError:
        return None  # an int beyond float range is "huge", not a crash
    return as_float if math.isfinite(as_float) else None


def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        # ValueError also covers ints too long to print (Python's int→str digit limit).
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def reused_correlation(command: Mapping[str, Any], correlation_id: str, first_ack: Mapping[str, Any]) -> Rejection:
    """``correlation_reused``: the id already answered a different command (whose ack stays its answer)."""
    return Rejection(
        command.get("op"), correlation_id, command.get("event_id"), RejectReason.CORRELATION_REUSED,
        f"correlationId {correlation_id!r} was already used for a different command "
        f"(op {first_ack.get('op')!r}, event_id {first_ack.get('event_id')!r}, ts {first_ack.get('ts')}); "
        "a retry must repeat the command exactly, a new command needs a new correlationId",
    )
