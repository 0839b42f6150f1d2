"""Turn queued outbox items into MQTT messages (the drain plan).

* By default (``batch_metering`` off, the shell passes ``batch_max_readings=1``) every reading
  is its own message, flat, as the seed sent it, plus ``"seq"``: the seed's backend stores one
  reading per message. With batching on (opt-in, a contract change for the backend):
* A run of consecutive metering readings becomes one batch message
  ``{"venId", "seq" (first), "seqs": [...], "batch": true, "readings": [...]}`` of at most
  ``batch_max_readings`` readings and at most 128 KB: a backlog after an outage drains at
  ~100 readings per publish instead of one, which matters at AWS's ~100 publishes/s.
* A lone reading (the live case) goes out flat, as the seed sent it, plus ``"seq"``.
* Acks, telemetry and shadow documents are one message each.
* A message that is oversize on its own is still planned; :mod:`limits` then dead-letters it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ven_common.contract import AWS_MAX_PAYLOAD_BYTES

from backendbridge.outbox import OutboxItem

KIND_METERING = "metering"
KIND_ACK = "ack"
KIND_TELEMETRY = "telemetry"
KIND_SHADOW = "shadow"
KIND_SHADOW_GET = "shadow_get"
SHADOW_KINDS = frozenset({KIND_SHADOW, KIND_SHADOW_GET})


@dataclass(frozen=True)
class PlannedMessage:
    topic: str
    payload: bytes
    seqs: tuple[int, ...]
    kind: str


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _single(item: OutboxItem) -> PlannedMessage:
    body = dict(item.payload)
    if item.kind in SHADOW_KINDS:
        # The shadow service rejects unknown top-level keys; clientToken is echoed back on
        # /update/rejected and /get/accepted, which is all the correlation we need.
        body["clientToken"] = f"seq-{item.seq}"
    else:
        body["seq"] = item.stream_seq
    return PlannedMessage(item.topic, _dumps(body).encode(), (item.seq,), item.kind)


def _batch_envelope(ven_id: str, seqs: list[int], readings: list[str]) -> bytes:
    head = f'{{"venId":{_dumps(ven_id)},"seq":{seqs[0]},"seqs":[{",".join(map(str, seqs))}],'
    return (head + f'"batch":true,"readings":[{",".join(readings)}]}}').encode()


def plan_messages(
    items: Sequence[OutboxItem],
    *,
    ven_id: str,
    batch_max_readings: int,
    max_bytes: int = AWS_MAX_PAYLOAD_BYTES,
) -> list[PlannedMessage]:
    """Messages for ``items`` (seq order preserved; every seq in exactly one message)."""
    out: list[PlannedMessage] = []
    i = 0
    n = len(items)
    while i < n:
        item = items[i]
        if item.kind != KIND_METERING:
            out.append(_single(item))
            i += 1
            continue
        run_end = i
        while (
            run_end < n
            and items[run_end].kind == KIND_METERING
            and items[run_end].topic == item.topic
            and run_end - i < batch_max_readings
        ):
            run_end += 1
        out.extend(_pack_run(items[i:run_end], ven_id, max_bytes))
        i = run_end
    return out


def _pack_run(run: Sequence[OutboxItem], ven_id: str, max_bytes: int) -> list[PlannedMessage]:
    if len(run) == 1:
        return [_single(run[0])]
    out: list[PlannedMessage] = []
    overhead = len(_batch_envelope(ven_id, [0], []))
    members: list[OutboxItem] = []
    readings: list[str] = []
    size = overhead

    def flush() -> None:
        if len(members) == 1:
            out.append(_single(members[0]))
        elif members:
            body = _batch_envelope(ven_id, [m.stream_seq for m in members], readings)
            out.append(PlannedMessage(run[0].topic, body, tuple(m.seq for m in members), KIND_METERING))

    for item in run:
        text = _dumps(item.payload)
        # Each reading also costs a comma in "readings" and its digits plus a comma in "seqs".
        cost = len(text.encode()) + 1 + len(str(item.stream_seq)) + 1
        if members and size + cost > max_bytes:
            flush()
            members, readings, size = [], [], overhead
        members.append(item)
        readings.append(text)
        size += cost
    flush()
    return out
