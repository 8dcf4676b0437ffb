from __future__ import annotations

import itertools

import pytest

from shared.errors import IllegalTransition
from shared.lifecycle import LEGAL_TRANSITIONS, check_transition, is_legal
from shared.models import JobStatus as S

EXPECTED_LEGAL = {
    (S.QUEUED, S.DISPATCHED),
    (S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.FAILED),
    (S.QUEUED, S.TIMED_OUT),
    (S.DISPATCHED, S.RUNNING),
    (S.DISPATCHED, S.QUEUED),
    (S.DISPATCHED, S.CANCELLED),
    (S.DISPATCHED, S.FAILED),
    (S.DISPATCHED, S.TIMED_OUT),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.TIMED_OUT),
    (S.RUNNING, S.QUEUED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair_of_states_is_legal_exactly_when_the_state_machine_says(
    current: S, target: S
) -> None:
    legal = (current, target) in EXPECTED_LEGAL
    assert is_legal(current, target) is legal
    if legal:
        check_transition("j", current, target)
    else:
        with pytest.raises(IllegalTransition):
            check_transition("j", current, target)


def test_terminal_states_have_no_way_out() -> None:
    for status in (S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT):
        assert status.terminal
        assert LEGAL_TRANSITIONS[status] == frozenset()
