"""Every decision on a job, pure, for both stores (one server's, local.LocalStore, and the cluster's,
cluster.replica.Cluster): what a client's action, a worker's move or a release does to a job's row,
from the one table of jobs/model.py; what the job's JSON becomes by it; whether a new job has room.

A store reads the row (under its lock, or locked in PostgreSQL), asks here, and writes the answer with a
compare-and-set on the row's version. Nothing here keeps state or touches a database.
"""
import dataclasses

from ..errors import IllegalTransition, QueueFull, RequestTooLarge
from . import model
from .model import Action, Move, State

CANCELED = {"ErrorCode": model.CANCELED_JOB, "ErrorDescription": model.CANCELED_DESCRIPTION, "ErrorDetails": ""}
KEEP = object()  # a column left as it is


@dataclasses.dataclass(frozen=True)
class Row:
    """What the decisions need of a job's row (the cluster's columns; one server's model.Job alike)."""

    state: State
    version: int = 0
    owner: str = None
    token: int = 0
    ran: bool = False  # some replica started it since it was (re)submitted: it may have stored work
    undo: dict = None  # its work must be removed, then it fails with this error (ErrorCode, ...)
    pause_requested: bool = False


@dataclasses.dataclass(frozen=True)
class Change:
    """A move to write: every field KEEP is left as the row has it."""

    state: object = KEEP  # the new state (a move readers see, recorded in the change feed)
    release: bool = False  # no owner any more (a claim in flight is fenced off)
    undo: object = KEEP  # dict: undo then fail with it; None: no undo
    pause_requested: object = KEEP
    ran: object = KEEP
    reset: bool = False  # resubmission: progress, errors and completion cleared
    error: dict = None  # the job's ErrorCode/ErrorDescription/ErrorDetails once it fails

    @property
    def visible(self):
        return self.state is not KEEP


def client_action(action, row):
    """The Change an Action makes to `row`, as model.decide_action decides;
    None: accepted, nothing to do.

    Raises:
        IllegalTransition: the state forbids it (the core's 400).
    """
    decision = model.decide_action(action, row.state, row.undo.get("ErrorCode") if row.undo is not None else None,
                                   row.pause_requested, row.ran)
    effect = decision.effect
    if effect is model.Effect.REFUSED:
        raise IllegalTransition(decision.reason)
    if effect is model.Effect.NOTHING:
        return None
    if effect is model.Effect.ASK_PAUSE:  # its owner carries it out at its next step
        return Change(pause_requested=True)
    if effect is model.Effect.ASK_CANCEL:
        return Change(undo=dict(CANCELED), pause_requested=False)  # a cancel outweighs a pause asked before
    if effect is model.Effect.RECANCEL:
        return Change(undo=dict(CANCELED))  # failing on its own: a cancel answered 200 ends it as cancelled
    if effect is model.Effect.FAIL:  # nothing stored: it fails at once (a claim not started yet is fenced off)
        return Change(state=State.FAILURE, release=True, error=dict(CANCELED), undo=None, pause_requested=False)
    if effect is model.Effect.UNDO:
        return Change(undo=dict(CANCELED), release=True, pause_requested=False)  # whoever claims it undoes it
    if action == Action.RESUBMIT:
        return Change(state=decision.state, release=True, reset=True, undo=None, pause_requested=False, ran=False)
    return Change(state=decision.state, release=True, pause_requested=False)


LOST = object()  # worker_move: the claim is not the row's any more


def worker_move(move, row, owner, token, undoing, error=None):
    """What a worker's `move` (a model.Move) does to `row`: LOST when the claim (`owner`, `token`) is not the row's
    any more; else (Change or None, applied) where applied is False when the row refused the move
    because a cancel was asked meanwhile (the worker then undoes instead).

    `undoing`: the claim was made to undo the job's work (a cancel accepted while nobody ran it):
    its run is a replay that readers do not see.
    """
    if row is None or row.owner != owner or row.token != token:
        return LOST
    if move in (Move.STEP, Move.START):
        if undoing:
            return None, True
        if move == Move.START:
            state = model.outcome(Move.START, row.state)
            return (Change(state=state, ran=True), True) if state == State.RUNNING else LOST
        return (Change(), True) if row.state == State.RUNNING else LOST
    if move in (Move.SUCCEED, Move.SUSPEND) and row.undo is not None:
        return None, False  # a cancel arrived after the last step: undo instead
    if move in (Move.SUCCEED, Move.SUSPEND):
        state = model.outcome(move, row.state)
        if not isinstance(state, State) or undoing:  # the table has no such move from the row's state
            return LOST
        return Change(state=state, release=True, pause_requested=False), True
    if move == Move.STOP:
        return release(row), True
    if move in (Move.BEGIN_UNDO, Move.CANCELLED, Move.FAIL):  # recorded, so that a new owner undoes too
        return (Change() if row.undo is not None else Change(undo=dict(error or CANCELED))), True
    if move == Move.UNDONE:
        state = model.outcome(Move.UNDONE, row.state)
        if state is None:
            return LOST
        return Change(state=state, release=True, undo=None, pause_requested=False,
                      error=dict(row.undo or error or CANCELED)), True
    raise ValueError("unknown move %s" % move)


def release(row):
    """A job let go by its owner (it stops, or its lease expired): Running shows Pending again, or
    Paused when a pause was asked of it; a job being undone keeps its state for the next claimer."""
    if row.state in (State.RUNNING, State.RETRY):
        move = Move.RELEASE_PAUSED if row.pause_requested and row.undo is None else Move.RELEASE
        state = model.outcome(move, row.state)
        return Change(state=state, release=True,
                      pause_requested=False if state == State.PAUSED or row.undo is not None else KEEP)
    return Change(release=True, pause_requested=False if row.undo is not None else KEEP)


def document_after(document, change, report, now):
    """The job's JSON (the core's shape) once `change` (a Change, or None) and what its worker reported with
    it (a model.Report, or None) are written: the one way both stores change a job's JSON. `now`: the
    moment, as model.timestamp writes it."""
    document = dict(document, Timestamp=now)
    if report is not None:
        if report.progress is not None:
            document["Progress"] = int(round(report.progress))
        if report.runtime:
            document["EffectiveRuntime"] = round(document.get("EffectiveRuntime", 0.0) + report.runtime, 6)
        if report.content is not None:
            document["Content"] = dict(report.content)
    if change is None:
        return document
    if change.state is not KEEP:
        document["State"] = change.state
    if change.error is not None:
        document.update(change.error)
    if change.reset:
        document.update(Progress=0, ErrorCode=0, ErrorDescription="Success", ErrorDetails="", EffectiveRuntime=0.0)
        document.pop("CompletionTime", None)
    if change.state is not KEEP and change.state in model.FINISHED:
        document.setdefault("CompletionTime", now)
        if change.state == State.SUCCESS:
            document["Progress"] = 100
    return document


def check_room(unfinished, held, size, max_jobs, max_bytes, where=""):
    """Refuse a new job of `size` bytes when `unfinished` jobs (any state but Success and Failure) holding
    `held` bytes of requests leave no room for it; None bounds: unbounded.

    Raises:
        RequestTooLarge: `size` alone is over `max_bytes`: it could never be accepted.
        QueueFull: `max_jobs` jobs are unfinished, or `size` would take `held` over `max_bytes`.
    """
    if max_bytes is not None and size > max_bytes:
        raise RequestTooLarge("The body has %d bytes, more than AdvancedRest.MaxPendingBytes (%d): it can never be "
                              "queued as a job" % (size, max_bytes))
    if max_jobs is not None and unfinished >= max_jobs:
        raise QueueFull("%d plugin jobs are unfinished%s (pending, paused or running): AdvancedRest.MaxPendingJobs is "
                        "%d" % (unfinished, where, max_jobs))
    if max_bytes is not None and held + size > max_bytes:
        raise QueueFull("The unfinished plugin jobs%s hold %d bytes of requests: %d more would pass "
                        "AdvancedRest.MaxPendingBytes (%d)" % (where, held, size, max_bytes))
