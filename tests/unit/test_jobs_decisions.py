"""The decisions on a job row (jobs/decisions.py, of both stores), without a database: every move follows the one
table, a lost claim is lost whatever the move, a cancel answered is never forgotten."""
import itertools

import pytest

from advanced_rest.errors import IllegalTransition
from advanced_rest.jobs import model
from advanced_rest.jobs.model import Move, State
from advanced_rest.jobs import decisions as rows
from advanced_rest.jobs.decisions import KEEP, LOST, Row

ME, TOKEN = "replica-a", 7


def owned(state, **kw):
    return Row(state=state, owner=ME, token=TOKEN, **kw)


@pytest.mark.parametrize("action,state,expected", [
    ("pause", State.PENDING, State.PAUSED),
    ("resume", State.PAUSED, State.PENDING),
    ("resubmit", State.FAILURE, State.PENDING),
])
def test_an_action_that_moves_the_state_moves_it_at_once_and_fences_off_any_claim(action, state, expected):
    change = rows.client_action(action, owned(state))
    assert change.state == expected and change.release


@pytest.mark.parametrize("action,state", [
    ("resume", State.RUNNING), ("resume", State.PENDING), ("resubmit", State.SUCCESS), ("resubmit", State.RUNNING),
    ("pause", "Deleted"),
])
def test_what_the_table_forbids_is_a_400(action, state):
    with pytest.raises(IllegalTransition):
        rows.client_action(action, owned(state))


def test_a_pause_of_a_running_job_is_a_request_in_the_row_for_its_owner():
    change = rows.client_action("pause", owned(State.RUNNING))
    assert change.state is KEEP and change.pause_requested is True and not change.release
    assert rows.client_action("pause", owned(State.RUNNING, pause_requested=True)) is None


def test_a_cancel_of_a_running_job_is_recorded_as_an_undo_with_error_37():
    change = rows.client_action("cancel", owned(State.RUNNING, ran=True))
    assert change.undo["ErrorCode"] == model.CANCELED_JOB and change.state is KEEP


def test_a_cancel_of_a_job_that_never_ran_fails_it_at_once():
    change = rows.client_action("cancel", Row(state=State.PENDING))
    assert change.state == State.FAILURE and change.error["ErrorCode"] == model.CANCELED_JOB


def test_a_cancel_of_a_paused_job_that_ran_waits_for_whoever_undoes_its_work():
    change = rows.client_action("cancel", Row(state=State.PAUSED, ran=True))
    assert change.state is KEEP and change.undo["ErrorCode"] == model.CANCELED_JOB and change.release


def test_a_job_being_cancelled_accepts_cancel_and_pause_and_refuses_resume():
    row = Row(state=State.PAUSED, ran=True, undo=dict(rows.CANCELED))
    assert rows.client_action("cancel", row) is None and rows.client_action("pause", row) is None
    with pytest.raises(IllegalTransition):
        rows.client_action("resume", row)


def test_a_cancel_of_a_job_failing_on_its_own_makes_it_end_as_cancelled():
    row = owned(State.RUNNING, ran=True, undo={"ErrorCode": 15, "ErrorDescription": "Bad file format"})
    assert rows.client_action("cancel", row).undo["ErrorCode"] == model.CANCELED_JOB


@pytest.mark.parametrize("move", [Move.START, Move.STEP, Move.SUCCEED, Move.SUSPEND, Move.STOP, Move.BEGIN_UNDO,
                                  Move.UNDONE])
@pytest.mark.parametrize("row", [None, Row(state=State.RUNNING, owner="replica-b", token=TOKEN + 1),
                                 Row(state=State.RUNNING, owner=ME, token=TOKEN + 1),
                                 Row(state=State.PENDING, owner=None, token=TOKEN)])
def test_a_worker_whose_claim_is_not_the_rows_is_lost_whatever_its_move(move, row):
    assert rows.worker_move(move, row, ME, TOKEN, undoing=False) == LOST


def test_a_worker_reads_a_cancel_before_it_succeeds_and_undoes_instead():
    row = owned(State.RUNNING, ran=True, undo=dict(rows.CANCELED))
    assert rows.worker_move(Move.SUCCEED, row, ME, TOKEN, undoing=False) == (None, False)
    assert rows.worker_move(Move.SUSPEND, row, ME, TOKEN, undoing=False) == (None, False)


def test_an_undo_keeps_the_first_error_and_ends_with_it():
    row = owned(State.RUNNING, ran=True, undo=dict(rows.CANCELED))
    change, applied = rows.worker_move(Move.BEGIN_UNDO, row, ME, TOKEN, False, error={"ErrorCode": 15})
    assert applied and change.undo is KEEP
    change, applied = rows.worker_move(Move.UNDONE, row, ME, TOKEN, False, error={"ErrorCode": 15})
    assert change.state == State.FAILURE and change.error["ErrorCode"] == model.CANCELED_JOB and change.release


def test_a_replay_to_undo_shows_nothing_until_its_failure():
    row = owned(State.PAUSED, ran=True, undo=dict(rows.CANCELED))
    assert rows.worker_move(Move.START, row, ME, TOKEN, undoing=True) == (None, True)
    assert rows.worker_move(Move.STEP, row, ME, TOKEN, undoing=True) == (None, True)
    change, _ = rows.worker_move(Move.UNDONE, row, ME, TOKEN, undoing=True)
    assert change.state == State.FAILURE


@pytest.mark.parametrize("row,state", [
    (owned(State.RUNNING), State.PENDING),
    (owned(State.RUNNING, pause_requested=True), State.PAUSED),
    (owned(State.RUNNING, pause_requested=True, undo=dict(rows.CANCELED)), State.PENDING),
    (owned(State.PENDING), KEEP),
    (owned(State.PAUSED, undo=dict(rows.CANCELED)), KEEP),
])
def test_a_released_job_never_stays_running_and_keeps_what_was_asked(row, state):
    change = rows.release(row)
    assert change.state == state and change.release


def test_every_state_a_decision_writes_is_reached_by_a_move_of_the_table():
    """No decision invents a move: each new state is the table's outcome of some event from the old one."""
    reachable = {(state, outcome) for (event, state), outcome in model.TRANSITIONS.items()
                 if outcome in model.STATES}
    states = (State.PENDING, State.RUNNING, State.PAUSED, State.SUCCESS, State.FAILURE)
    for state, ran, undo, pause in itertools.product(states, (False, True), (None, dict(rows.CANCELED)),
                                                     (False, True)):
        row = owned(state, ran=ran, undo=undo, pause_requested=pause)
        changes = [rows.release(row)]
        for action in model.ACTIONS:
            try:
                changes.append(rows.client_action(action, row))
            except IllegalTransition:
                pass
        for move in (Move.START, Move.STEP, Move.SUCCEED, Move.SUSPEND, Move.STOP, Move.BEGIN_UNDO, Move.UNDONE):
            for undoing in (False, True):
                decision = rows.worker_move(move, row, ME, TOKEN, undoing)
                if decision != LOST:
                    changes.append(decision[0])
        for change in changes:
            if change is not None and change.state is not KEEP and change.state != state:
                assert (state, change.state) in reachable, (state, change)


def test_a_cancel_outweighs_a_pause_asked_before_it():
    row = owned(State.RUNNING, ran=True, pause_requested=True)
    change = rows.client_action("cancel", row)
    assert change.undo["ErrorCode"] == model.CANCELED_JOB and change.pause_requested is False
    released = rows.release(owned(State.RUNNING, ran=True, pause_requested=True, undo=dict(rows.CANCELED)))
    assert released.state == State.PENDING and released.pause_requested is False
