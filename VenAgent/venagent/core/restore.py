"""Staggered restore: bring shed circuits back one by one, never all at once.

Switching every load back at the same instant recreates the peak the event removed (and, on
thousands of VENs, a synchronized rebound on the feeder). So circuit i comes back at
``end + offset + i·spacing``, most important first (reverse shed order), and never before its
min_off time (a circuit held back by min_off does not hold back the others). ``offset`` is one
``uniform(0, jitter)`` draw for the whole plan: it de-synchronizes buildings from each other, while the
spacing inside one building stays exact. The spacing is also held against what really happened:
after a step switches a load on, no other step runs within ``spacing`` of it, even if steps fell
due together (a late timer, a restart, two events ending).
Only circuits that were on before the event are turned back on: the restore returns to the
pre-event state, it does not "enable everything".
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace


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
    offset = rng.uniform(0.0, jitter_sec) if jitter_sec > 0 else 0.0
    steps: list[RestoreStep] = []
    for name in reversed(shed_order):
        # We only ever shed circuits that were on; "unknown" before the event therefore means on.
        if pre_state.get(name) is False:
            continue
        due = end_ts + offset + len(steps) * spacing_sec
        ready = off_ready_at(name)
        # A circuit held off by its min_off waits alone; the others do not queue behind it
        # (take_due keeps the switchings apart).
        steps.append(RestoreStep(name, due if ready is None else max(due, ready), event_id, kw_before.get(name, 0.0)))
    return steps


@dataclass(frozen=True)
class RestoreRound:
    """What one pass over the plan decided at ``now``."""

    switch_on: RestoreStep | None
    """At most one load comes back per round: the spacing is a promise about real switchings."""
    dropped: tuple[RestoreStep, ...]
    """Due steps that are no longer ours to write (overridden, circuit removed): nothing switches."""
    pending: tuple[RestoreStep, ...]


def take_due(
    steps: Sequence[RestoreStep],
    now: float,
    *,
    spacing_sec: float,
    writable: Callable[[str], bool],
    last_switch_ts: float | None = None,
) -> RestoreRound:
    """Pick the step to run now; every other step waits at least ``spacing_sec`` after it.

    ``last_switch_ts``: when a restore last switched a load on, whichever plan it came from
    (a plan added later must keep its distance too)."""
    # Room for float rounding in "now − last ≥ spacing" when the tick lands exactly on it; a
    # clock stepped back past the last switch must not hold the restore back.
    blocked = last_switch_ts is not None and last_switch_ts <= now < last_switch_ts + spacing_sec - 1e-9
    switch_on: RestoreStep | None = None
    dropped: list[RestoreStep] = []
    pending: list[RestoreStep] = []
    for step in sorted(steps, key=lambda s: s.due_ts):  # stable: plan order among equal due times
        if step.due_ts > now:
            pending.append(step)
        elif not writable(step.name):
            dropped.append(step)
        elif switch_on is None and not blocked:
            switch_on = step
        else:
            pending.append(step)
    if switch_on is not None:
        not_before = now + spacing_sec
        pending = [s if s.due_ts >= not_before else replace(s, due_ts=not_before) for s in pending]
    return RestoreRound(switch_on, tuple(dropped), tuple(pending))
