"""model.py: its enums, and decide_action, the one decision of a client's action for one server's engine and
the cluster."""
import datetime
import json

import pytest

from advanced_rest.errors import IllegalTransition
from advanced_rest.jobs import model
from advanced_rest.jobs.model import Action, Effect, State

CANCELED = model.CANCELED_JOB


@pytest.mark.parametrize("action, state, undo_code, pause_requested, ran, effect, moved_to", [
    (Action.PAUSE, State.PENDING, None, False, False, Effect.MOVE, State.PAUSED),
    (Action.PAUSE, State.RUNNING, None, False, True, Effect.ASK_PAUSE, None),
    (Action.PAUSE, State.RUNNING, None, True, True, Effect.NOTHING, None),  # asked already
    (Action.PAUSE, State.SUCCESS, None, False, True, Effect.NOTHING, None),
    (Action.CANCEL, State.RUNNING, None, False, True, Effect.ASK_CANCEL, None),
    (Action.CANCEL, State.PENDING, None, False, False, Effect.FAIL, None),  # nothing stored
    (Action.CANCEL, State.PAUSED, None, False, True, Effect.UNDO, None),
    (Action.CANCEL, State.FAILURE, None, False, True, Effect.NOTHING, None),
    (Action.RESUME, State.PAUSED, None, False, True, Effect.MOVE, State.PENDING),
    (Action.RESUBMIT, State.FAILURE, None, False, True, Effect.MOVE, State.PENDING),
    # being undone: it ends in Failure whatever is asked
    (Action.CANCEL, State.RUNNING, 15, False, True, Effect.RECANCEL, None),  # failing on its own: ends as cancelled
    (Action.CANCEL, State.RUNNING, CANCELED, False, True, Effect.NOTHING, None),
    (Action.PAUSE, State.PAUSED, CANCELED, False, True, Effect.NOTHING, None),
    (Action.PAUSE, State.RUNNING, 15, False, True, Effect.NOTHING, None),
])
def test_an_accepted_action(action, state, undo_code, pause_requested, ran, effect, moved_to):
    decision = model.decide_action(action, state, undo_code, pause_requested, ran)
    assert (decision.effect, decision.state) == (effect, moved_to)


@pytest.mark.parametrize("action, state, undo_code", [
    (Action.RESUME, State.RUNNING, None), (Action.RESUME, State.FAILURE, None), (Action.RESUBMIT, State.SUCCESS, None),
    (Action.RESUBMIT, State.RUNNING, 15), (Action.RESUME, State.PAUSED, CANCELED),  # refused at once during an undo
    (Action.RESUBMIT, State.PENDING, CANCELED), ("explode", State.PENDING, None), (Action.PAUSE, "Deleted", None),
])
def test_a_refused_action_is_a_400_on_both_adapters(action, state, undo_code):
    decision = model.decide_action(action, state, undo_code)
    assert decision.effect is Effect.REFUSED and decision.reason
    from advanced_rest.jobs import decisions as rows
    with pytest.raises(IllegalTransition):
        rows.client_action(action, rows.Row(state=state, undo={"ErrorCode": undo_code} if undo_code else None))


def test_the_model_loads_alone_as_the_cluster_history_checker_loads_it():
    import importlib.util
    spec = importlib.util.spec_from_file_location("model_alone", model.__file__)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_action_names_are_the_routes():
    assert model.ACTIONS == ("cancel", "pause", "resume", "resubmit")


def test_the_json_answered_keeps_the_core_s_strings():
    assert [str(state) for state in State] == ["Pending", "Running", "Success", "Failure", "Paused", "Retry"]
    now = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    document = model.new_document("x", "CreateDicom", 0, {}, model.timestamp(now))
    assert json.loads(json.dumps(document))["State"] == "Pending" and document["CreationTime"] == "20240506T070809.000000"
    assert model.document_of(model.record_of(document), document["Timestamp"]) == document  # saved, read back
    assert State("Paused") is State.PAUSED and "Success" in model.FINISHED
    assert model.DELETED == "Deleted" and model.DELETED not in model.STATES


def test_a_move_and_an_outcome_of_the_table_are_never_one_name():
    assert model.Move.BEGIN_UNDO != model.Outcome.UNDO
    assert {key for key, _ in model.TRANSITIONS} <= set(model.Action) | set(model.Move)
    assert all(isinstance(found, (State, model.Outcome)) for found in model.TRANSITIONS.values())
