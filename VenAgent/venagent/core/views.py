"""The dict shapes the core hands out: acks, status (the seed's shadow shape), metering, reports.

Pure functions from engine data to JSON-ready dicts, kept apart so the wire shapes are in one
place and the engine reads as decisions only. Fields are only ever added to the seed's shapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, cast

from ven_common.contract import Ack, AckStatus, CircuitReading, EventState, Reading

from venagent.core.circuits import CircuitTracker
from venagent.core.events import EventRecord
from venagent.core.health import DeviceFault
from venagent.core.shedding import EPS_KW

KW_DIGITS = 3


def kw(value: float | None) -> float | None:
    return None if value is None else round(value, KW_DIGITS)


def accepted_ack(
    *,
    op: str,
    now: float,
    correlation_id: str,
    ven_id: str,
    event: EventRecord | None,
    state: EventState | None,
    actual_shed_kw: float | None,
) -> Ack:
    """The seed's ack plus venId, state and the event window."""
    return {
        "op": op,
        "status": AckStatus.ACCEPTED.value,
        "event_id": None if event is None else event.event_id,
        "requested_shed_kw": None if event is None else event.requested_shed_kw,
        "actual_shed_kw": kw(actual_shed_kw),
        "ts": int(now),
        "correlationId": correlation_id,
        "venId": ven_id,
        "state": None if state is None else state.value,
        "start_ts": None if event is None else event.start_ts,
        "end_ts": None if event is None else event.end_ts,
    }


def shortfall_note(available_kw: float, reasons: Sequence[str]) -> str:
    why = ", ".join(reasons) if reasons else "no other circuit can be shed"
    return f"only {available_kw:.1f} kW sheddable: {why}"


def settled_event_ack(ack: Ack, event: EventRecord, *, confirmed: float, faults: str,
                      unconfirmed: Sequence[str], unsheddable: Callable[[], Sequence[str]]) -> Ack:
    """An accepted event's ack with what is shed as far as the driver confirmed (``confirmed`` kW),
    and the shortfall and its reason when that is less than requested."""
    ack = ack.copy()
    ack["actual_shed_kw"] = kw(confirmed)
    if event.total_at_start is None:
        ack["shortfall_kw"] = kw(event.requested_shed_kw)
        why = f"no fresh reading ({faults})" if faults else "no circuit readings yet"
        ack["note"] = f"{why}: shedding starts when fresh readings arrive"
    elif unconfirmed:
        ack["shortfall_kw"] = kw(max(0.0, event.requested_shed_kw - confirmed))
        ack["note"] = (f"the driver did not confirm switching off {', '.join(unconfirmed)} ({faults or 'no answer'}); "
                       "the VEN sends it again when the device answers")
    elif event.requested_shed_kw - confirmed > EPS_KW:
        ack["shortfall_kw"] = kw(event.requested_shed_kw - confirmed)
        ack["note"] = shortfall_note(confirmed, unsheddable())
    return ack


def status_key(active: EventRecord | None, scheduled: Iterable[EventRecord], overrides: Mapping[str, bool],
               faults: Iterable[DeviceFault], enabled: Mapping[str, bool | None], stale: Iterable[str]) -> str:
    """What a status listener acts on (not every kW wiggle): the event, the schedule, overrides, device
    faults, which circuits are on and which readings are stale. A new key means publish the status."""
    return json.dumps([
        None if active is None
        else [active.event_id, active.state.value, active.requested_shed_kw, active.end_ts, active.shed_order],
        [[e.event_id, e.requested_shed_kw, e.start_ts, e.end_ts] for e in scheduled],
        sorted(overrides.items()),
        sorted((f.device, f.kind) for f in faults),
        sorted(enabled.items()),
        sorted(stale),
    ])


def circuits_view(tracker: CircuitTracker, overrides: Mapping[str, bool], full: bool,
                  stale: Collection[str] = ()) -> list[dict[str, Any]]:
    """The seed's circuit rows; a stale circuit shows null (not its last value) and ``stale: true``."""
    rows = []
    for name, cfg in tracker.configs.items():
        state = tracker.states[name]
        row: dict[str, Any] = {"name": name, "enabled": state.enabled, "current_kw": kw(state.kw)}
        if name in stale:
            row.update(enabled=None, current_kw=None, stale=True)
        if full:
            row.update(priority=cfg.priority, critical=cfg.critical, override=overrides.get(name))
        rows.append(row)
    return rows


def event_summary(event: EventRecord, actual_shed_kw: float | None, now: float | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "event_id": event.event_id,
        "state": event.state.value,
        "requested_shed_kw": event.requested_shed_kw,
        "actual_shed_kw": kw(actual_shed_kw),
        "start_ts": event.start_ts,
        "end_ts": event.end_ts,
        "shed_circuits": list(event.shed_order),
    }
    if now is not None and event.mv is not None:
        summary["mv"] = event.mv.so_far(now)  # the running M&V (core.mv), the same the report closes
    return summary


def status_view(
    *,
    tracker: CircuitTracker,
    overrides: Mapping[str, bool],
    total_kw: float | None,
    shed_kw: float | None,
    baseline_kw: float | None,
    active: EventRecord | None,
    scheduled: Sequence[EventRecord],
    stale: Collection[str] = (),
    faults: Sequence[Mapping[str, Any]] = (),
    now: float | None = None,
) -> dict[str, Any]:
    return {
        "power_kw": kw(total_kw),
        "shed_kw": kw(shed_kw),
        "baseline_kw": kw(baseline_kw),
        "active_event": None if active is None else event_summary(active, shed_kw, now),
        "circuits": circuits_view(tracker, overrides, full=True, stale=stale),
        "scheduled_events": [event_summary(e, None) for e in scheduled],
        "overrides": dict(overrides),
        "quality": "stale" if stale or faults else "good",
        "device_faults": [dict(f) for f in faults],
    }


def metering_view(
    *,
    ven_id: str,
    now: float,
    tracker: CircuitTracker,
    total_kw: float | None,
    baseline_kw: float | None,
    shed_kw: float | None,
    active_event_id: str | None,
    stale: Collection[str] = (),
    faults: Sequence[Mapping[str, Any]] = (),
) -> Reading:
    """The seed's reading plus ``quality``: ``good``, or ``stale`` with the power and shed null
    (no fresh reading exists: a backend must not store a last value as if it were measured now)
    and the device faults named."""
    reading: Reading = {
        "venId": ven_id,
        "ts": now,
        "power_kw": kw(total_kw),
        "baseline_kw": kw(baseline_kw),
        "shed_kw": kw(shed_kw),
        "active_event": active_event_id,
        "circuits": cast(list[CircuitReading], circuits_view(tracker, {}, full=False, stale=stale)),
        "quality": "good" if total_kw is not None and not stale else "stale",
    }
    if faults:
        reading["device_faults"] = [dict(f) for f in faults]
    return reading


def report_view(*, event: EventRecord, ven_id: str, now: float, mv_fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "event_report",
        "event_id": event.event_id,
        "correlationId": event.correlation_id,
        "venId": ven_id,
        "state": event.state.value,
        "ended_by": event.ended_by,
        "start_ts": event.start_ts,
        "end_ts": event.ended_ts,
        "requested_shed_kw": event.requested_shed_kw,
        **mv_fields,
        "ts": now,
    }
