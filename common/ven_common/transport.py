"""The transport rules of a command: how raw bytes become one JSON object, or why they cannot.

One owner for these rules: the bridge applies them to what arrives on ``ven/cmd/{thing}``, and
the VEN's core applies the same function to bytes or text handed to it over RPC, so the same
input always gets the same reason code. Field rules (op, correlationId, venId, ranges) are not
here: they belong to the VEN's core only (``venagent.core.commands``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ven_common.contract import AWS_MAX_JSON_DEPTH, AWS_MAX_PAYLOAD_BYTES, RejectReason

# The only characters that matter for nesting depth. A regex that matches whole strings
# would backtrack quadratically on input like '\\"\\"\\"...', so strings are tracked by hand.
_DEPTH_SPECIALS = re.compile(r'[\\"\[\]{}]')


@dataclass(frozen=True)
class TransportError:
    """Why raw input is not one JSON object; ``partial`` is whatever could be read of it
    (lenient parse), so the sender can still be answered with its correlationId."""

    code: RejectReason
    reason: str
    partial: Any = None


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


def _lenient_parse(text: str) -> Any:
    """Python's parser accepts NaN/Infinity: good enough to read the correlationId of a
    command that strict JSON refuses, so its sender still gets a reasoned reject."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def decode_object(
    raw: bytes | str, *, max_bytes: int = AWS_MAX_PAYLOAD_BYTES, max_depth: int = AWS_MAX_JSON_DEPTH
) -> dict[Any, Any] | TransportError:
    """Raw command bytes (or text) -> one JSON object, or the transport rule it breaks."""
    data = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        return TransportError(RejectReason.TOO_LARGE, f"command is {len(data)} bytes, limit {max_bytes}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return TransportError(RejectReason.MALFORMED_JSON, f"command is not UTF-8 (byte {exc.start})")
    if nesting_depth_exceeds(text, max_depth):
        return TransportError(RejectReason.TOO_DEEP, f"JSON nests deeper than {max_depth} levels",
                              _lenient_parse(text))
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return TransportError(RejectReason.MALFORMED_JSON, f"invalid JSON: {exc}"[:200], _lenient_parse(text))
    if not isinstance(obj, dict):
        return TransportError(RejectReason.NOT_AN_OBJECT, f"command must be a JSON object, got {type(obj).__name__}")
    return obj
