"""Closed-loop hold of an active event's target: shed more, or give back the last circuit.

The target is ``total_at_start − requested_shed_kw``. Loads drift during an event (a compressor
cycles, someone plugs in a car), so on each reading/tick we compare the measured total to it, but
act at most once per ``hold_confirm_sec`` after the last change: the driver needs time to switch
and the meter time to show it, and acting on stale readings makes the loop oscillate.

* total > target + tolerance → shed more, selecting for the excess among still-sheddable circuits.
* otherwise, if turning the most recently shed circuit back on (at the kW it drew before we shed
  it) would keep total ≤ target, release it — one per confirm period, LIFO, so the most important
  shed circuit comes back first. min_off is the caller's to check (it passes ``release_allowed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from venagent.core.shedding import Candidate, select_shed

HOLD_TOLERANCE_KW = 0.05


@dataclass(frozen=True)
class LastShed:
    name: str
    kw_before: float
    release_allowed: bool


@dataclass(frozen=True)
class HoldAction:
    shed: tuple[str, ...] = ()
    release: str | None = None

    @property
    def is_noop(self) -> bool:
        return not self.shed and self.release is None


def decide_hold(
    *,
    now: float,
    total_kw: float,
    target_kw: float,
    last_change_ts: float | None,
    confirm_sec: float,
    candidates: Sequence[Candidate],
    last_shed: LastShed | None,
) -> HoldAction:
    """What the loop should do now; a no-op while the last change is still settling."""
    if last_change_ts is not None and now - last_change_ts < confirm_sec:
        return HoldAction()
    if total_kw > target_kw + HOLD_TOLERANCE_KW:
        selection = select_shed(candidates, total_kw - target_kw)
        return HoldAction(shed=selection.chosen)
    if last_shed is not None and last_shed.release_allowed and total_kw + last_shed.kw_before <= target_kw:
        return HoldAction(release=last_shed.name)
    return HoldAction()
