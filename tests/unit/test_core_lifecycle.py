"""The declared lifecycle table: exactly the legal moves, guards enforced."""

from __future__ import annotations

import itertools

import pytest

from ven_common.contract import EventState as S

from venagent.core.errors import IllegalTransitionError
from venagent.core.lifecycle import TERMINAL, TRANSITIONS, GuardContext, Trigger, next_state

DUE = GuardContext(now=100.0, start_ts=50.0, end_ts=100.0)
NOT_DUE = GuardContext(now=10.0, start_ts=50.0, end_ts=100.0)

LEGAL = {
    (None, Trigger.CREATE): S.SCHEDULED,
    (S.SCHEDULED, Trigger.START): S.ACTIVE,
    (S.SCHEDULED, Trigger.CANCEL): S.CANCELLED,
    (S.ACTIVE, Trigger.END): S.COMPLETED,
    (S.ACTIVE, Trigger.RESTORE): S.COMPLETED,
    (S.ACTIVE, Trigger.CANCEL): S.CANCELLED,
}


def test_table_is_exactly_the_documented_lifecycle() -> None:
    assert {key: row[0] for key, row in TRANSITIONS.items()} == LEGAL


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product([None, *S], Trigger)))
def test_every_pair_is_legal_or_raises(state: S | None, trigger: Trigger) -> None:
    if (state, trigger) in LEGAL:
        assert next_state(state, trigger, DUE) is LEGAL[(state, trigger)]
    else:
        with pytest.raises(IllegalTransitionError):
            next_state(state, trigger, DUE)


def test_terminal_states_have_no_way_out() -> None:
    assert {S.COMPLETED, S.CANCELLED} == TERMINAL
    assert not [key for key in TRANSITIONS if key[0] in TERMINAL]


@pytest.mark.parametrize(("state", "trigger"), [(S.SCHEDULED, Trigger.START), (S.ACTIVE, Trigger.END)])
def test_time_guards_block_early_moves(state: S, trigger: Trigger) -> None:
    with pytest.raises(IllegalTransitionError, match="guard"):
        next_state(state, trigger, NOT_DUE)
