"""The transport check of a command from ``ven/cmd/{thing}`` before it can touch the VOLTTRON bus.

Only transport rules apply here (size, UTF-8, JSON object, nesting depth: one owner,
:mod:`ven_common.transport`). Everything about the fields (op, correlationId, venId, ranges)
and idempotency is the VEN's core's, so a command gets the same reason code whichever way it
reaches the VEN, and a re-sent command reaches the VEN, which replays its stored ack.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ven_common.contract import AWS_MAX_JSON_DEPTH, AWS_MAX_PAYLOAD_BYTES, RejectReason, read_correlation_id, reject_ack
from ven_common.transport import TransportError, decode_object


@dataclass(frozen=True)
class Verdict:
    """Either ``command`` (for the VEN) or ``reject`` (the ack to send back), never both."""

    command: dict[str, Any] | None
    reject: dict[str, Any] | None
    reason_code: RejectReason | None
    correlation_id: str | None

    @property
    def accepted(self) -> bool:
        return self.command is not None


class EnvelopeChecker:
    """Turns raw MQTT payloads into commands for the VEN or transport reject acks (counted)."""

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

    def check(self, raw: bytes) -> Verdict:
        """A command for the VEN or its transport reject ack (never raises)."""
        decoded = decode_object(raw, max_bytes=self.max_bytes, max_depth=self.max_depth)
        if not isinstance(decoded, TransportError):
            return Verdict(command=decoded, reject=None, reason_code=None, correlation_id=read_correlation_id(decoded))
        self.rejected[decoded.code.value] += 1
        obj = decoded.partial
        cid = read_correlation_id(obj)
        ack = reject_ack(
            op=obj.get("op") if isinstance(obj, dict) else None,
            correlation_id=cid,
            reason_code=decoded.code,
            reason=decoded.reason,
            ts=int(self._clock()),
            ven_id=self.thing,
            event_id=obj.get("event_id") if isinstance(obj, dict) else None,
        )
        return Verdict(command=None, reject=dict(ack), reason_code=decoded.code, correlation_id=cid)
