"""Device faults: which driver device gives no fresh reading, or did not confirm a write.

A fault is derived from the circuit tracker (when each circuit was last read, which writes the
driver refused) and from the last write error per device, so there is one source of truth. The
VEN names the fault in status, shadow, metering and the web page, and reports its beginning and
its end once each on ``ven/device/fault`` (the bridge forwards it as telemetry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from venagent.core.circuits import CircuitTracker

STALE = "stale"
WRITE = "write"


@dataclass(frozen=True)
class DeviceFault:
    device: str
    kind: str
    """``stale`` (no fresh reading) or ``write`` (a write the driver did not confirm)."""
    problem: str
    """For a person: what is wrong and since when."""

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "kind": self.kind, "problem": self.problem}


class DeviceHealth:
    """Tracks write errors per device and turns the tracker's freshness into faults."""

    def __init__(self, grace_sec: float) -> None:
        self.grace_sec = grace_sec
        self._born: float | None = None
        self._write_errors: dict[str, str] = {}
        self._reported: frozenset[tuple[str, str]] = frozenset()
        self._problems: dict[tuple[str, str], str] = {}

    def note_writes(self, devices_ok: Sequence[str], errors: Mapping[str, str]) -> None:
        for device in devices_ok:
            self._write_errors.pop(device, None)
        self._write_errors.update(errors)

    def faults(self, now: float, tracker: CircuitTracker, meter_device: str | None) -> list[DeviceFault]:
        if self._born is None:
            self._born = now
        devices = tracker.by_device()
        if meter_device is not None and meter_device not in devices:
            devices = {**devices, meter_device: []}
        stale_now = set(tracker.stale_circuits(now))
        out = []
        for device, names in devices.items():
            stale = [n for n in names if n in stale_now] if stale_now else []
            meter_stale = device == meter_device and not tracker.meter_fresh(now)
            if (stale or meter_stale) and now - self._born >= self.grace_sec:
                seen = [tracker.states[n].seen_ts for n in names] + ([tracker.meter_ts] if device == meter_device else [])
                known = [ts for ts in seen if ts is not None]
                what = ", ".join(stale + (["meter"] if meter_stale else []))
                if len(known) < len(seen):
                    age = "never read" if not known else f"some never read, last reading {now - max(known):.0f} s ago"
                else:
                    age = f"last fresh reading {now - min(known):.0f} s ago"
                out.append(DeviceFault(device, STALE, f"no fresh reading ({age}; stale: {what})"))
            failed = [n for n in names if tracker.states[n].write_failed]
            if failed:
                error = self._write_errors.get(device, "no answer")
                out.append(DeviceFault(device, WRITE, f"write of {', '.join(failed)} not confirmed: {error}"))
        return out

    def changes(self, now: float, faults: Sequence[DeviceFault]) -> list[dict[str, Any]]:
        """``begin``/``end`` messages for faults that appeared or went away since the last call."""
        current = {(f.device, f.kind): f.problem for f in faults}
        keys = frozenset(current)
        out: list[dict[str, Any]] = []
        for device, kind in sorted(keys - self._reported):
            out.append({"ts": now, "device": device, "kind": kind, "state": "begin", "problem": current[(device, kind)]})
        for device, kind in sorted(self._reported - keys):
            out.append({"ts": now, "device": device, "kind": kind, "state": "end",
                        "problem": self._problems.get((device, kind), "")})
        self._reported = keys
        self._problems = current
        return out
