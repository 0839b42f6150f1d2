"""Device-shadow documents: the reported state, desired-state deltas, version conflicts.

Reported documents always fit AWS's 8 KB shadow limit. When the VEN's status is too large
(hundreds of circuits), detail is dropped in this order until it fits:

1. circuit fields other than ``name``, ``enabled``, ``current_kw``;
2. bridge counters other than ``connected``, ``queue_depth``, ``dropped``;
3. ``active_event`` reduced to its ``event_id``;
4. the circuit list truncated (``circuits_truncated`` = total count): the circuits that are off
   (shed) or stale come first, so the cut falls on the ordinary ones, and ``circuits_omitted``
   summarises what was cut (how many, how many on and off, their kW);
5. the circuit list and any extra status keys removed (``circuit_count`` kept);
6. everything except ``online``, ``power_kw``, ``shed_kw``, ``active_event_id``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ven_common.contract import AWS_MAX_SHADOW_BYTES

CIRCUIT_CORE_KEYS = ("name", "enabled", "current_kw")
BRIDGE_CORE_KEYS = ("connected", "queue_depth", "dropped")
_STATUS_CORE_KEYS = ("power_kw", "shed_kw", "active_event", "circuits")
_MAX_VALUE_DEPTH = 3  # state.reported.<key> already uses 3 of AWS's 8 levels.
_MAX_STR = 256

DESIRED_METERING_INTERVAL = "metering_interval_sec"
DESIRED_CIRCUIT_PRIORITIES = "circuit_priorities"
PERMITTED_DESIRED_KEYS = (DESIRED_METERING_INTERVAL, DESIRED_CIRCUIT_PRIORITIES)


def _clean(value: Any, depth: int = 0) -> Any:
    """JSON-safe copy: non-finite numbers -> None, long strings cut, deep nesting dropped."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:_MAX_STR]
    if depth >= _MAX_VALUE_DEPTH:
        return None
    if isinstance(value, Mapping):
        return {str(k)[:_MAX_STR]: _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value]
    return str(value)[:_MAX_STR]


def _size(doc: Mapping[str, Any]) -> int:
    return len(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())


def _wrap(reported: Mapping[str, Any]) -> dict[str, Any]:
    return {"state": {"reported": dict(reported)}}


def _full_reported(
    status: Mapping[str, Any],
    circuits: list[Any] | None,
    overrides: Mapping[str, Any] | None,
    bridge: Mapping[str, Any] | None,
    desired_echo: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole reported state (before any size cut) and the status extras in it."""
    reported: dict[str, Any] = {"online": True}
    for key in ("power_kw", "shed_kw", "active_event"):
        if key in status:
            reported[key] = _clean(status[key])
    extras = {k: _clean(v) for k, v in status.items() if k not in _STATUS_CORE_KEYS}
    reported.update(extras)
    if circuits is not None:
        reported["circuits"] = circuits
    if overrides:
        reported["overrides"] = _clean(dict(overrides))
    if bridge:
        reported["bridge"] = _clean(dict(bridge))
    if desired_echo:
        reported.update(_clean(dict(desired_echo)))
    return reported, extras


def _drop_detail(reported: dict[str, Any]) -> None:
    """Keep only the core bridge counters and the active event's id."""
    if isinstance(reported.get("bridge"), dict):
        reported["bridge"] = {k: reported["bridge"][k] for k in BRIDGE_CORE_KEYS if k in reported["bridge"]}
    if isinstance(reported.get("active_event"), dict):
        reported["active_event"] = {"event_id": reported["active_event"].get("event_id")}


def _notable(circuit: Mapping[str, Any]) -> bool:
    """A circuit an operator looks for first: off (shed, or switched off) or not freshly read."""
    return circuit.get("enabled") is not True or circuit.get("stale") is True


def _omitted(cut: list[Any]) -> dict[str, Any]:
    kws = [c.get("current_kw") for c in cut]
    return {"count": len(cut), "on": sum(1 for c in cut if c.get("enabled") is True),
            "off": sum(1 for c in cut if c.get("enabled") is False),
            "kw": round(math.fsum(k for k in kws if isinstance(k, (int, float)) and math.isfinite(k)), 3)}


def _truncate_circuits(reported: dict[str, Any], max_bytes: int) -> int:
    """Binary search for the longest circuit list that fits, notable circuits first (in their
    order), then the others; returns its length."""
    listed = reported["circuits"]
    full = [c for c in listed if _notable(c)] + [c for c in listed if not _notable(c)]
    reported["circuits_truncated"] = len(full)
    lo, hi = 0, len(full)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        reported["circuits"] = full[:mid]
        reported["circuits_omitted"] = _omitted(full[mid:])
        if _size(_wrap(reported)) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    reported["circuits"] = full[:lo]
    reported["circuits_omitted"] = _omitted(full[lo:])
    return lo


def build_reported(
    status: Mapping[str, Any] | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    bridge: Mapping[str, Any] | None = None,
    desired_echo: Mapping[str, Any] | None = None,
    max_bytes: int = AWS_MAX_SHADOW_BYTES,
) -> dict[str, Any]:
    """``{"state": {"reported": {...}}}`` for the VEN's status dict, at most ``max_bytes``."""
    status = status or {}
    circuits_raw = status.get("circuits")
    circuits = [_clean(c) for c in circuits_raw if isinstance(c, Mapping)] if isinstance(circuits_raw, list) else []
    reported, extras = _full_reported(status, circuits if circuits_raw is not None else None,
                                      overrides, bridge, desired_echo)
    doc = _wrap(reported)
    if _size(doc) <= max_bytes:
        return doc
    # 1. circuit detail
    if "circuits" in reported:
        reported["circuits"] = [{k: c[k] for k in CIRCUIT_CORE_KEYS if k in c} for c in circuits]
    doc = _wrap(reported)
    if _size(doc) <= max_bytes:
        return doc
    # 2. bridge counters, 3. active event detail
    _drop_detail(reported)
    doc = _wrap(reported)
    if _size(doc) <= max_bytes:
        return doc
    # 4. truncate circuits: the longest prefix that fits
    if reported.get("circuits") and _truncate_circuits(reported, max_bytes) > 0:
        doc = _wrap(reported)
        if _size(doc) <= max_bytes:
            return doc
    # 5. no circuit list, no extras
    count = len(circuits)
    for key in [*list(extras), "circuits", "circuits_truncated", "circuits_omitted"]:
        reported.pop(key, None)
    if circuits_raw is not None:
        reported["circuit_count"] = count
    doc = _wrap(reported)
    if _size(doc) <= max_bytes:
        return doc
    # 6. the bare minimum (always tiny)
    event = status.get("active_event")
    minimal = {
        "online": True,
        "power_kw": _clean(status.get("power_kw")) if not isinstance(status.get("power_kw"), (Mapping, list)) else None,
        "shed_kw": _clean(status.get("shed_kw")) if not isinstance(status.get("shed_kw"), (Mapping, list)) else None,
        "active_event_id": (_clean(event.get("event_id"))[:128]
                            if isinstance(event, Mapping) and isinstance(event.get("event_id"), str) else None),
    }
    return _wrap(minimal)


# -- desired state ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeltaOutcome:
    """What to do with a ``/update/delta``: a config change for the VEN and refusals."""

    change: dict[str, Any] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def reported_echo(self) -> dict[str, Any]:
        """Reported values that make AWS clear the accepted part of the delta."""
        return dict(self.change)


def _check_interval(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "must be a number"
    if not 1 <= value <= 3600:
        return "must be between 1 and 3600 seconds"
    return None


def _check_priorities(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be an object {circuit name: priority}"
    if len(value) > 256:
        return "at most 256 circuits"
    for name, prio in value.items():
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            return "circuit names must be strings of 1..64 characters"
        if isinstance(prio, bool) or not isinstance(prio, int) or prio < 0:
            return f"priority of {name!r} must be an integer >= 0"
    return None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    DESIRED_METERING_INTERVAL: _check_interval,
    DESIRED_CIRCUIT_PRIORITIES: _check_priorities,
}


def apply_delta(state: Any) -> DeltaOutcome:
    """Validate the ``state`` of a delta message key by key (permitted keys only)."""
    if not isinstance(state, Mapping):
        return DeltaOutcome(refused={"state": "delta state must be an object"})
    change: dict[str, Any] = {}
    refused: dict[str, str] = {}
    for key, value in state.items():
        check = _CHECKS.get(key)
        if check is None:
            refused[str(key)[:64]] = "not a permitted desired key"
            continue
        problem = check(value)
        if problem:
            refused[key] = problem
        else:
            change[key] = dict(value) if isinstance(value, Mapping) else value
    return DeltaOutcome(change=change, refused=refused)


# -- version conflicts -----------------------------------------------------------------


class ShadowVersionSync:
    """Handles ``/update/rejected`` code 409: fetch the shadow, retry with its version.

    Routine reported updates carry no ``version`` (AWS then never answers 409); a 409 can
    only follow a versioned retry or another writer's versioned update, so retries are capped.
    """

    def __init__(self, max_retries: int = 3) -> None:
        self.max_retries = max_retries
        self.version: int | None = None
        self._awaiting_get = False
        self._retries = 0
        self.conflicts = 0

    def fresh_update(self) -> None:
        self._retries = 0

    def on_rejected(self, payload: Mapping[str, Any]) -> bool:
        """True if the caller should publish to ``/get`` now."""
        if payload.get("code") != 409:
            return False
        self.conflicts += 1
        if self._retries >= self.max_retries:
            return False
        self._retries += 1
        self._awaiting_get = True
        return True

    def on_get_accepted(self, payload: Mapping[str, Any]) -> int | None:
        """The version to retry with, or None when no retry is pending."""
        version = payload.get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            self.version = version
        if self._awaiting_get and self.version is not None:
            self._awaiting_get = False
            return self.version
        return None

    def on_delta(self, payload: Mapping[str, Any]) -> None:
        version = payload.get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            self.version = version
