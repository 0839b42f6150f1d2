"""Staggered restore: bring shed circuits back one by one, never all at once.

Switching every load back at the same instant recreates the peak the event removed (and, on
thousands of VENs, a synchronized rebound on the feeder). So circuit i comes back at
``end + i·spacing + uniform(0, jitter)``, most important first (reverse shed order), and never
before its min_off time. Only circuits that were on before the event are turned back on: the
restore returns to the pre-event state, it does not "enable everything".
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RestoreStep:
    name: str
    due_ts: float
    event_id: str | None
    kw_before: float = 0.0
    """What it drew before it was shed: a new event that adopts this step needs it."""


def plan_restore(
    *,
    end_ts: float,
    shed_order: Sequence[str],
    pre_state: Mapping[str, bool | None],
    kw_before: Mapping[str, float],
    off_ready_at: Callable[[str], float | None],
    spacing_sec: float,
    jitter_sec: float,
    rng: random.Random,
    event_id: str | None,
) -> list[RestoreStep]:
    """Steps in restore order; ``off_ready_at(name)`` is when min_off allows switching it on."""
    steps: list[RestoreStep] = []
    for name in reversed(shed_order):
        # We only ever shed circuits that were on; "unknown" before the event therefore means on.
        if pre_state.get(name) is False:
            continue
        index = len(steps)
        due = end_ts + index * spacing_sec + (rng.uniform(0.0, jitter_sec) if jitter_sec > 0 else 0.0)
        ready = off_ready_at(name)
        steps.append(RestoreStep(name, due if ready is None else max(due, ready), event_id, kw_before.get(name, 0.0)))
    return steps


def due_steps(steps: Sequence[RestoreStep], now: float) -> tuple[list[RestoreStep], list[RestoreStep]]:
    """Split into (due now, still pending), preserving order."""
    due = [s for s in steps if s.due_ts <= now]
    pending = [s for s in steps if s.due_ts > now]
    return due, pending
