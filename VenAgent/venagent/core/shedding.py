"""Which circuits to shed: a deterministic, near-minimal cover of the needed kW.

Rule (for a need N > 0, over the sheddable candidates):

1. Walk candidates in (priority, name) order — least important first — adding each circuit whose
   kW still fits in the remaining need. This honours priority without overshooting.
2. If need remains, add the smallest unselected circuit whose kW covers it (every unselected
   circuit is larger than the remaining need at this point, so "smallest" is the cheapest
   overshoot). If nothing is left, everything is shed and the shortfall is reported.
3. Prune in reverse shed order: drop any chosen circuit whose removal still leaves the sum ≥ N.
   One reverse pass suffices: the sum only shrinks, so a circuit that was needed stays needed.

Cost is one sort, O(n log n). Circuits drawing ≤ 0 kW are never candidates: shedding them
delivers nothing and only costs an actuation and a restore.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Float slack so that 2.0 kW "fits" a 2.0 kW need after a few additions/subtractions.
EPS_KW = 1e-9


@dataclass(frozen=True)
class Candidate:
    name: str
    kw: float
    priority: int


@dataclass(frozen=True)
class Selection:
    chosen: tuple[str, ...]
    """In shed order (the order writes should be issued and the reverse of restore order)."""
    shed_kw: float
    shortfall_kw: float


def select_shed(candidates: Iterable[Candidate], need_kw: float) -> Selection:
    """Choose circuits to shed so their kW sum reaches ``need_kw`` (see the module docstring)."""
    if not need_kw > 0:
        return Selection((), 0.0, 0.0)
    ordered = sorted((c for c in candidates if c.kw > 0), key=lambda c: (c.priority, c.name))
    chosen: list[Candidate] = []
    remaining = need_kw
    left: list[Candidate] = []
    for cand in ordered:
        if cand.kw <= remaining + EPS_KW:
            chosen.append(cand)
            remaining -= cand.kw
        else:
            left.append(cand)
    if remaining > EPS_KW and left:
        # Every leftover is larger than the remaining need (it was when skipped, and the need
        # only shrank since), so the smallest one is the cheapest cover.
        chosen.append(min(left, key=lambda c: (c.kw, c.priority, c.name)))
    chosen = _prune(chosen, need_kw)
    total = math.fsum(c.kw for c in chosen)
    shortfall = max(0.0, need_kw - total)
    return Selection(tuple(c.name for c in chosen), total, shortfall if shortfall > EPS_KW else 0.0)


def _prune(chosen: Sequence[Candidate], need_kw: float) -> list[Candidate]:
    total = math.fsum(c.kw for c in chosen)
    if total + EPS_KW < need_kw:
        return list(chosen)
    keep = [True] * len(chosen)
    for i in range(len(chosen) - 1, -1, -1):
        if total - chosen[i].kw + EPS_KW >= need_kw:
            keep[i] = False
            total -= chosen[i].kw
    return [c for c, k in zip(chosen, keep, strict=True) if k]
