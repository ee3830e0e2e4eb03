"""model.decide_action: the one decision of a client's action, for one server's engine and the cluster."""
import pytest

from advanced_rest.errors import IllegalTransition
from advanced_rest.jobs import model
from advanced_rest.jobs.model import Effect

CANCELED = model.CANCELED_JOB


@pytest.mark.parametrize("action, state, undo_code, pause_requested, ran, effect, moved_to", [
    (model.PAUSE, model.PENDING, None, False, False, Effect.MOVE, model.PAUSED),
    (model.PAUSE, model.RUNNING, None, False, True, Effect.ASK_PAUSE, None),
    (model.PAUSE, model.RUNNING, None, True, True, Effect.NOTHING, None),  # asked already
    (model.PAUSE, model.SUCCESS, None, False, True, Effect.NOTHING, None),
    (model.CANCEL, model.RUNNING, None, False, True, Effect.ASK_CANCEL, None),
    (model.CANCEL, model.PENDING, None, False, False, Effect.FAIL, None),  # nothing stored
    (model.CANCEL, model.PAUSED, None, False, True, Effect.UNDO, None),
    (model.CANCEL, model.FAILURE, None, False, True, Effect.NOTHING, None),
    (model.RESUME, model.PAUSED, None, False, True, Effect.MOVE, model.PENDING),
    (model.RESUBMIT, model.FAILURE, None, False, True, Effect.MOVE, model.PENDING),
    # being undone: it ends in Failure whatever is asked
    (model.CANCEL, model.RUNNING, 15, False, True, Effect.RECANCEL, None),  # failing on its own: ends as cancelled
    (model.CANCEL, model.RUNNING, CANCELED, False, True, Effect.NOTHING, None),
    (model.PAUSE, model.PAUSED, CANCELED, False, True, Effect.NOTHING, None),
    (model.PAUSE, model.RUNNING, 15, False, True, Effect.NOTHING, None),
])
def test_an_accepted_action(action, state, undo_code, pause_requested, ran, effect, moved_to):
    decision = model.decide_action(action, state, undo_code, pause_requested, ran)
    assert (decision.effect, decision.state) == (effect, moved_to)


@pytest.mark.parametrize("action, state, undo_code", [
    (model.RESUME, model.RUNNING, None), (model.RESUME, model.FAILURE, None), (model.RESUBMIT, model.SUCCESS, None),
    (model.RESUBMIT, model.RUNNING, 15), (model.RESUME, model.PAUSED, CANCELED),  # refused at once during an undo
    (model.RESUBMIT, model.PENDING, CANCELED), ("explode", model.PENDING, None), (model.PAUSE, "Deleted", None),
])
def test_a_refused_action_is_a_400_on_both_adapters(action, state, undo_code):
    decision = model.decide_action(action, state, undo_code)
    assert decision.effect is Effect.REFUSED and decision.reason
    from advanced_rest.jobs.cluster import rows
    with pytest.raises(IllegalTransition):
        rows.client_action(action, rows.Row(state=state, undo={"ErrorCode": undo_code} if undo_code else None))


def test_the_model_loads_alone_as_the_cluster_history_checker_loads_it():
    import importlib.util
    spec = importlib.util.spec_from_file_location("model_alone", model.__file__)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_action_names_are_the_routes():
    assert model.ACTIONS == ("cancel", "pause", "resume", "resubmit")
