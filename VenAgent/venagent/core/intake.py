"""A command's intake, in one pass: decode, fingerprint, the idempotency check, validation.

The answer is one of a closed set, which the engine dispatches exhaustively:

* :class:`Replay`: the ``correlationId`` already answered this very command (a backend retry, a broker
  redelivery): its stored ack is the answer again, and nothing is decided, stored or written.
* :class:`Refused`: the command cannot be taken (unreadable, invalid, or a ``correlationId`` reused for a
  different command). ``store`` says whether the rejection becomes that ``correlationId``'s answer: not for an
  unreadable command (no id) nor for a reused id (its first ack stays its answer).
* :class:`Admitted`: a valid typed command for the handlers, with what idempotency needs to store its ack.

Pure: the store is only read, and time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ven_common.contract import Ack, read_correlation_id, reject_ack

from venagent.core.commands import (
    Command,
    Rejection,
    decode_command,
    fingerprint,
    reused_correlation,
    validate_command,
)
from venagent.core.config import VenConfig


class AckLookup(Protocol):
    def get_ack_and_fingerprint(self, correlation_id: str) -> tuple[Ack, str | None] | None: ...


@dataclass(frozen=True)
class Replay:
    ack: Ack
    correlation_id: str
    fingerprint: str


@dataclass(frozen=True)
class Refused:
    rejection: Rejection
    correlation_id: str | None = None
    fingerprint: str | None = None
    store: bool = False


@dataclass(frozen=True)
class Admitted:
    command: Command
    op: Any
    correlation_id: str | None
    fingerprint: str


Intake = Replay | Refused | Admitted


def take_in(raw: bytes | str | Mapping[str, Any], acks: AckLookup, config: VenConfig, now: float) -> Intake:
    decoded = decode_command(raw)
    if isinstance(decoded, Rejection):
        return Refused(decoded)
    correlation_id = read_correlation_id(decoded)
    print_ = fingerprint(decoded)
    if correlation_id is not None:
        stored = acks.get_ack_and_fingerprint(correlation_id)
        if stored is not None:
            first_ack, stored_print = stored
            if stored_print is None or stored_print == print_:
                return Replay(first_ack, correlation_id, print_)
            return Refused(reused_correlation(decoded, correlation_id, first_ack))
    command = validate_command(decoded, config, now)
    if isinstance(command, Rejection):
        return Refused(command, correlation_id, print_, store=correlation_id is not None)
    return Admitted(command, decoded.get("op"), correlation_id, print_)


def rejection_ack(rejection: Rejection, now: float, ven_id: str) -> Ack:
    """The one builder of a reject ack from a core rejection (the reason code is the contract's)."""
    return reject_ack(op=rejection.op, correlation_id=rejection.correlation_id, reason_code=rejection.code,
                      reason=rejection.reason, ts=int(now), ven_id=ven_id, event_id=rejection.event_id)
