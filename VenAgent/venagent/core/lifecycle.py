"""The event lifecycle, declared as data.

``scheduled → active → completed | cancelled`` and ``scheduled → cancelled``. An event is born
either scheduled (start in the future) or straight into active (start due). Every allowed move is
a row of :data:`TRANSITIONS`: ``(state, trigger) → (next state, guard name)``; anything else, or a
failing guard, raises :class:`IllegalTransitionError`. Keeping it a table makes the legal moves
reviewable at a glance and testable exhaustively.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ven_common.contract import EventState

from venagent.core.errors import IllegalTransitionError


class Trigger(enum.StrEnum):
    CREATE = "create"
    """A new event_id arrives."""
    START = "start"
    """Its start time is due (tick, resume or a modification that moved it to now)."""
    END = "end"
    """Its end time passed (``ended_by: schedule``)."""
    RESTORE = "restore"
    """A restore command ended it early."""
    CANCEL = "cancel"
    """A cancel command, or a scheduled event whose whole window passed while we were down."""


@dataclass(frozen=True)
class GuardContext:
    now: float
    start_ts: float
    end_ts: float


Guard = Callable[[GuardContext], bool]

GUARDS: Mapping[str, Guard] = {
    "always": lambda ctx: True,
    "start_due": lambda ctx: ctx.start_ts <= ctx.now,
    "end_due": lambda ctx: ctx.end_ts <= ctx.now,
}

S = EventState
TRANSITIONS: Mapping[tuple[EventState | None, Trigger], tuple[EventState, str]] = {
    (None, Trigger.CREATE): (S.SCHEDULED, "always"),
    (S.SCHEDULED, Trigger.START): (S.ACTIVE, "start_due"),
    (S.SCHEDULED, Trigger.CANCEL): (S.CANCELLED, "always"),
    (S.ACTIVE, Trigger.END): (S.COMPLETED, "end_due"),
    (S.ACTIVE, Trigger.RESTORE): (S.COMPLETED, "always"),
    (S.ACTIVE, Trigger.CANCEL): (S.CANCELLED, "always"),
}
# An immediate event goes None → scheduled → active within one command: both moves are published,
# so a listener sees the same sequence whether the start was immediate or later.

TERMINAL: frozenset[EventState] = frozenset({S.COMPLETED, S.CANCELLED})


def next_state(state: EventState | None, trigger: Trigger, ctx: GuardContext) -> EventState:
    """The state after ``trigger``; raises if the table does not allow it or its guard fails."""
    row = TRANSITIONS.get((state, trigger))
    if row is None:
        raise IllegalTransitionError(f"no transition from {state} on {trigger}")
    target, guard = row
    if not GUARDS[guard](ctx):
        raise IllegalTransitionError(f"transition {state} --{trigger}--> {target} blocked by guard {guard}")
    return target
