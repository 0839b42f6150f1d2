"""Validate a command from ``ven/cmd/{thing}`` before it can touch the VOLTTRON bus.

Only the envelope is checked here (size, encoding, shape, op, addressee, correlationId);
the VEN validates the op-specific fields and answers with its own ack.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ven_common.contract import (
    AWS_MAX_JSON_DEPTH,
    AWS_MAX_PAYLOAD_BYTES,
    Op,
    RejectReason,
    read_correlation_id,
    reject_ack,
)

# The only characters that matter for nesting depth. A regex that matches whole strings
# would backtrack quadratically on input like '\\"\\"\\"...', so strings are tracked by hand.
_DEPTH_SPECIALS = re.compile(r'[\\"\[\]{}]')
_KNOWN_OPS = frozenset(op.value for op in Op)


@dataclass(frozen=True)
class Verdict:
    """Either ``command`` (accepted) or ``reject`` (the ack to send back), never both."""

    command: dict[str, Any] | None
    reject: dict[str, Any] | None
    reason_code: RejectReason | None
    correlation_id: str | None

    @property
    def accepted(self) -> bool:
        return self.command is not None


def nesting_depth_exceeds(text: str, limit: int) -> bool:
    """True if JSON ``text`` nests arrays/objects deeper than ``limit``.

    Runs before ``json.loads`` so hostile input like ``[[[[...`` is refused without the
    decoder's recursion (RecursionError at ~1000 levels, after much work).
    """
    depth = 0
    in_string = False
    escaped_pos = -1
    for match in _DEPTH_SPECIALS.finditer(text):
        pos = match.start()
        ch = text[pos]
        if in_string:
            if pos == escaped_pos:
                continue
            if ch == "\\":
                escaped_pos = pos + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class EnvelopeChecker:
    """Turns raw MQTT payloads into accepted commands or precise reject acks (counted)."""

    def __init__(
        self,
        thing: str,
        *,
        max_bytes: int = AWS_MAX_PAYLOAD_BYTES,
        max_depth: int = AWS_MAX_JSON_DEPTH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.thing = thing
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self._clock = clock
        self.rejected: Counter[str] = Counter()

    def _reject(
        self, code: RejectReason, reason: str, obj: Any = None
    ) -> Verdict:
        self.rejected[code.value] += 1
        cid = read_correlation_id(obj)
        op = obj.get("op") if isinstance(obj, dict) else None
        event_id = obj.get("event_id") if isinstance(obj, dict) else None
        ack = reject_ack(
            op=op,
            correlation_id=cid,
            reason_code=code,
            reason=reason,
            ts=int(self._clock()),
            ven_id=self.thing,
            event_id=event_id,
        )
        return Verdict(command=None, reject=ack, reason_code=code, correlation_id=cid)

    def check(self, raw: bytes) -> Verdict:
        """Accept a command for the VEN or produce its reject ack (never raises)."""
        if len(raw) > self.max_bytes:
            return self._reject(
                RejectReason.TOO_LARGE, f"command is {len(raw)} bytes, limit {self.max_bytes}"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return self._reject(RejectReason.MALFORMED_JSON, f"not UTF-8 at byte {exc.start}")
        if nesting_depth_exceeds(text, self.max_depth):
            return self._reject(
                RejectReason.TOO_DEEP, f"JSON nests deeper than {self.max_depth} levels", _lenient_parse(text)
            )
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            return self._reject(RejectReason.MALFORMED_JSON, f"invalid JSON: {exc}"[:200],
                                _lenient_parse(text))
        if not isinstance(obj, dict):
            return self._reject(
                RejectReason.NOT_AN_OBJECT, f"command must be a JSON object, got {type(obj).__name__}"
            )
        if "correlationId" not in obj:
            return self._reject(RejectReason.MISSING_FIELD, "correlationId is required", obj)
        if read_correlation_id(obj) is None:
            return self._reject(
                RejectReason.WRONG_TYPE, "correlationId must be a string of 1..256 characters", obj
            )
        op = obj.get("op")
        if op is None:
            return self._reject(RejectReason.MISSING_FIELD, "op is required", obj)
        if not isinstance(op, str) or op not in _KNOWN_OPS:
            shown = op if isinstance(op, str) else type(op).__name__
            return self._reject(
                RejectReason.UNKNOWN_OP,
                f"unknown op {str(shown)[:64]!r}; known: {', '.join(sorted(_KNOWN_OPS))}",
                obj,
            )
        ven_id = obj.get("venId")
        if ven_id is not None and ven_id != self.thing:
            return self._reject(
                RejectReason.WRONG_VEN,
                f"venId {str(ven_id)[:128]!r} is not this VEN ({self.thing!r})",
                obj,
            )
        return Verdict(command=obj, reject=None, reason_code=None, correlation_id=read_correlation_id(obj))


def _lenient_parse(text: str) -> Any:
    """Python's parser accepts NaN/Infinity: good enough to read the correlationId of a
    command that strict JSON refuses, so its sender still gets a reasoned reject."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
