"""One contract for the plugin's jobs, run against both adapters: one server's (single.SingleServer: memory, one
lock, saved as Orthanc's global properties are, in a dict here) and the cluster's (Cluster on a real PostgreSQL,
one replica, no Orthanc), each built as app.py builds it. Each action (and DELETE) in each state, a cancel
during a failing job's undo included: the same answer (accepted or 400, at once) and the same end on both
(jobs/decisions.py decides for both); two actions on one job at once; the change feed's order and numbering;
the history's trimming; the bound on unfinished jobs; the gauges at each scrape; a cancel racing the last step;
a restart, and a kill -9 while a job runs, after a cancel was answered, and right after jobs ended (issue 27)."""
import functools
import threading

import pytest

from advanced_rest.errors import BadFileFormat, IllegalTransition, QueueFull
from advanced_rest.jobs import model
from advanced_rest.jobs.cluster import database as cluster_database, replica as cluster_
from advanced_rest.jobs.changes import ChangeFeed
from advanced_rest.jobs.workers import Restored, Runner
from advanced_rest.jobs.single import SingleServer
from advanced_rest.metrics.families import tally
from advanced_rest.jobs.model import Action, State
from servers import until

OWN_ERROR = BadFileFormat.code  # what a failing step ends its job with
ANSWER_WITHIN = 10.0  # seconds: an action is answered without waiting for any step or undo to end


class Control:
    """What the test holds of one job, whichever runner (re-created from the payload) runs it."""

    def __init__(self, hold_at=None, fail_at=None, hold_undo=False):
        self.hold_at, self.fail_at, self.hold_undo = hold_at, fail_at, hold_undo
        self.at_step, self.step_go = threading.Event(), threading.Event()  # held in step `hold_at`
        self.in_undo, self.undo_go = threading.Event(), threading.Event()  # held in its rollback
        self.stored = set()  # steps whose work is stored now

    def release(self):
        self.step_go.set()
        self.undo_go.set()


CONTROLS = {}  # job id -> Control


class Held(Runner):
    """Steps that store one thing each, held where its Control says; fails once at `fail_at`."""

    def __init__(self, payload):
        self._payload = payload
        self._control = CONTROLS[payload["ID"]]

    def steps(self):
        return self._payload["Steps"]

    def step(self, index):
        control = self._control
        if index == control.hold_at and not control.step_go.is_set():
            control.at_step.set()
            assert control.step_go.wait(30), "step never released"
        if index == control.fail_at:
            control.fail_at = None  # once: a resubmission succeeds
            raise BadFileFormat("broken at step %d" % index)
        control.stored.add(index)

    def content(self):
        return {"Stored": len(self._control.stored)}

    def payload(self):
        return self._payload

    def rollback(self):
        control = self._control
        if control.hold_undo and not control.undo_go.is_set():
            control.in_undo.set()
            assert control.undo_go.wait(30), "undo never released"
        control.stored.clear()


def _runner_for(job_type, payload, record):
    """As app.py's: a saved job's runner from its payload, a stand-in when it has none (a success)."""
    return Held(payload) if payload is not None else Restored(record.get("Content"))


class OneServer:
    """The jobs as one server runs them (one worker), saved into `properties` (a dict standing for Orthanc's
    global properties, which is all that one server's jobs leave after a kill -9)."""

    def __init__(self, history_size=50, max_pending=None, properties=None):
        self.bounds = dict(history_size=history_size, max_pending=max_pending)
        self.properties = {} if properties is None else properties
        self.feed = ChangeFeed()
        self.server = SingleServer(self.feed, _runner_for, concurrent_jobs=1,
                                   history_size=history_size, max_pending=max_pending,
                                   properties=(self.properties.get, self.properties.__setitem__))
        self.server.start()
        self.jobs = self.server.jobs

    def reopen(self, kill):
        """The server started again after a clean stop, or after a kill -9: its saved properties as they were
        at that instant; its workers never write again (a step in flight is held by the test)."""
        if not kill:
            self.server.stop()
            return OneServer(properties=self.properties, **self.bounds)
        _silence(self.jobs)
        return OneServer(properties=dict(self.properties), **self.bounds)

    def submit(self, job_id, payload):
        return self.jobs.submit("Test", Held(payload), job_id=job_id)

    def gauges(self):
        """orthanc_jobs' source for this mode, as app.py wires it."""
        return tally(self.jobs.all())

    def close(self):
        self.server.stop()


def _silence(store):
    """A killed process's workers: nothing they do reaches the store any more, and they claim nothing."""
    store.move = lambda claim, move, report=None: None
    store.claim = lambda stopping: stopping.wait() and None


class Cluster:
    """One replica of the cluster (one worker), its jobs in PostgreSQL."""

    def __init__(self, database, history_size=50, max_pending=None):
        import psycopg
        import psycopg_pool
        self.database, self.bounds = database, dict(history_size=history_size, max_pending=max_pending)
        options = dict(autocommit=True, application_name=cluster_database.application_name("a"),
                       options=cluster_database.session_options(30.0))
        self.pool = psycopg_pool.ConnectionPool(database.conninfo, kwargs=options, min_size=1, max_size=4, open=True)
        db = cluster_database.Database(
            self.pool, lambda app: psycopg.connect(database.conninfo, **dict(options, application_name=app)), "a")
        self.jobs = cluster_.Cluster(db, _runner_for, concurrent_jobs=1,
                                     history_size=history_size, max_pending=max_pending)
        self.feed = self.jobs.feed
        self.jobs.open()
        self.jobs.start()

    def submit(self, job_id, payload):
        return self.jobs.submit("Test", Held(payload), job_id=job_id)

    def gauges(self):
        """orthanc_jobs' source for this mode, as app.py wires it (this replica holds the reporting role)."""
        return self.jobs.gauges()

    def reopen(self, kill):
        """The replica started again (the same identifier) after a clean stop, or after a kill -9: its loops and
        workers silenced, its connections dropped (its identity lock with them), nothing handed back."""
        if not kill:
            self.close()
            return Cluster(self.database, **self.bounds)
        _silence(self.jobs)
        self.jobs._stop.set()
        for thread in self.jobs._threads:
            thread.join(5)
        self.jobs._db.stop()
        identity = self.jobs._identity.info.backend_pid
        self.jobs._identity.close()
        self.pool.close()
        until("its sessions ended", lambda: not self.database.query(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (identity,)), timeout=15.0, every=0.05)
        return Cluster(self.database, **self.bounds)

    def close(self):
        self.jobs.stop()
        self.pool.close()


@pytest.fixture(params=["one-server", "cluster"])
def make_adapter(request):
    """(history_size=50, max_pending=None) -> a new adapter of this kind, closed at the end of the test;
    `make.reopen(adapter, kill)`: the same started again (see OneServer.reopen, Cluster.reopen)."""
    made = []

    def make(**bounds):
        made.append(OneServer(**bounds) if request.param == "one-server"
                    else Cluster(request.getfixturevalue("postgres_database"), **bounds))
        return made[-1]

    def reopen(adapter, kill):
        made.append(adapter.reopen(kill))
        return made[-1]
    make.reopen = reopen
    yield make
    for control in CONTROLS.values():
        control.release()
    for adapter in made:
        adapter.close()


@pytest.fixture
def adapter(make_adapter):
    return make_adapter()


_until = functools.partial(until, timeout=15.0, every=0.01)


def _state(adapter, job_id):
    job = adapter.jobs.get(job_id)
    return job["State"] if job is not None else "Deleted"


def _job(adapter, steps=3, **control):
    job_id = model.new_job_id()
    CONTROLS[job_id] = Control(**control)
    adapter.submit(job_id, {"ID": job_id, "Steps": steps})
    return job_id


# -- each state, reached as a user reaches it; what is held until the end of the test -------------------------

def _pending(adapter):
    blocker = _job(adapter, hold_at=0)  # the one worker is busy: the next job waits
    assert CONTROLS[blocker].at_step.wait(10)
    job_id = _job(adapter)
    assert _state(adapter, job_id) == State.PENDING
    return job_id, [blocker]


def _running(adapter):
    job_id = _job(adapter, hold_at=1)  # step 0 stored, held in step 1
    assert CONTROLS[job_id].at_step.wait(10)
    _until("Running", lambda: _state(adapter, job_id) == State.RUNNING)
    return job_id, []


def _paused(adapter):
    job_id, _ = _running(adapter)
    adapter.jobs.act(job_id, Action.PAUSE)
    CONTROLS[job_id].step_go.set()
    _until("Paused", lambda: _state(adapter, job_id) == State.PAUSED)
    return job_id, []


def _success(adapter):
    job_id = _job(adapter, steps=1)
    _until("Success", lambda: _state(adapter, job_id) == State.SUCCESS)
    return job_id, []


def _failure(adapter):
    job_id = _job(adapter, fail_at=0)
    _until("Failure", lambda: _state(adapter, job_id) == State.FAILURE)
    return job_id, []


def _failing(adapter):
    """A step raised: the job's work is being removed (held there), then it fails with its own error."""
    job_id = _job(adapter, fail_at=1, hold_undo=True)
    assert CONTROLS[job_id].in_undo.wait(10)
    return job_id, []


def _cancelling(adapter):
    """A cancel of a running job took effect: its work is being removed (held there)."""
    job_id = _job(adapter, hold_at=1, hold_undo=True)
    assert CONTROLS[job_id].at_step.wait(10)
    adapter.jobs.act(job_id, Action.CANCEL)
    CONTROLS[job_id].step_go.set()
    assert CONTROLS[job_id].in_undo.wait(10)
    return job_id, []


STATES = {"Pending": _pending, "Running": _running, "Paused": _paused, "Success": _success, "Failure": _failure,
          "Failing": _failing, "Cancelling": _cancelling}

OK, REFUSED = "accepted", "400"
DELETE = "delete"
SUCCESS, PAUSED, DELETED = (State.SUCCESS, 0), (State.PAUSED, 0), ("Deleted", None)
CANCELLED, FAILED = (State.FAILURE, model.CANCELED_JOB), (State.FAILURE, OWN_ERROR)

# (state, action) -> (answer, (the state it ends in once nothing is held, its ErrorCode))
CONTRACT = {
    ("Pending", Action.PAUSE): (OK, PAUSED),
    ("Pending", Action.CANCEL): (OK, CANCELLED),
    ("Pending", Action.RESUME): (REFUSED, SUCCESS),
    ("Pending", Action.RESUBMIT): (REFUSED, SUCCESS),
    ("Pending", DELETE): (REFUSED, SUCCESS),
    ("Running", Action.PAUSE): (OK, PAUSED),
    ("Running", Action.CANCEL): (OK, CANCELLED),
    ("Running", Action.RESUME): (REFUSED, SUCCESS),
    ("Running", Action.RESUBMIT): (REFUSED, SUCCESS),
    ("Running", DELETE): (REFUSED, SUCCESS),
    ("Paused", Action.PAUSE): (OK, PAUSED),
    ("Paused", Action.CANCEL): (OK, CANCELLED),
    ("Paused", Action.RESUME): (OK, SUCCESS),
    ("Paused", Action.RESUBMIT): (REFUSED, PAUSED),
    ("Paused", DELETE): (REFUSED, PAUSED),
    ("Success", Action.PAUSE): (OK, SUCCESS),
    ("Success", Action.CANCEL): (OK, SUCCESS),
    ("Success", Action.RESUME): (REFUSED, SUCCESS),
    ("Success", Action.RESUBMIT): (REFUSED, SUCCESS),
    ("Success", DELETE): (OK, DELETED),
    ("Failure", Action.PAUSE): (OK, FAILED),
    ("Failure", Action.CANCEL): (OK, FAILED),
    ("Failure", Action.RESUME): (REFUSED, FAILED),
    ("Failure", Action.RESUBMIT): (OK, SUCCESS),  # from scratch: its step fails only once
    ("Failure", DELETE): (OK, DELETED),
    # A job being undone ends in Failure whatever is asked, and no action waits for the undo to end.
    ("Failing", Action.CANCEL): (OK, CANCELLED),  # a cancel answered 200 ends it as cancelled
    ("Failing", Action.PAUSE): (OK, FAILED),
    ("Failing", Action.RESUME): (REFUSED, FAILED),
    ("Failing", Action.RESUBMIT): (REFUSED, FAILED),
    ("Failing", DELETE): (REFUSED, FAILED),
    ("Cancelling", Action.CANCEL): (OK, CANCELLED),
    ("Cancelling", Action.PAUSE): (OK, CANCELLED),
    ("Cancelling", Action.RESUME): (REFUSED, CANCELLED),
    ("Cancelling", Action.RESUBMIT): (REFUSED, CANCELLED),
    ("Cancelling", DELETE): (REFUSED, CANCELLED),
}


def _answer(adapter, job_id, action):
    """OK or REFUSED, as answered within ANSWER_WITHIN s while whatever holds the job still holds it."""
    answered = []

    def send():
        try:
            adapter.jobs.delete(job_id) if action == DELETE else adapter.jobs.act(job_id, action)
            answered.append(OK)
        except IllegalTransition:
            answered.append(REFUSED)
        except Exception as error:  # told to the test, which fails on it
            answered.append(error)
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    thread.join(ANSWER_WITHIN)
    assert answered, "%s was not answered within %g s (it waited for the job)" % (action, ANSWER_WITHIN)
    assert answered[0] in (OK, REFUSED), answered[0]
    return answered[0]


def test_the_contract_covers_each_action_in_each_state():
    assert set(CONTRACT) == {(state, action) for state in STATES for action in model.ACTIONS + (DELETE,)}


@pytest.mark.parametrize("state, action", list(CONTRACT), ids=["%s-%s" % key for key in CONTRACT])
def test_each_action_in_each_state(adapter, state, action):
    answer, (final, code) = CONTRACT[(state, action)]
    job_id, others = STATES[state](adapter)
    assert _answer(adapter, job_id, action) == answer
    for held in [job_id] + others:
        CONTROLS[held].release()
    _until("job %s ends %s" % (job_id, final), lambda: _state(adapter, job_id) == final)
    if final != "Deleted":  # Paused, Success or Failure: nothing held, nothing changes it any more
        assert adapter.jobs.get(job_id)["ErrorCode"] == code
    if final == State.FAILURE:
        assert CONTROLS[job_id].stored == set(), "a failed job's work is removed"
    for other in others:
        _until("the blocker ends", lambda: _state(adapter, other) == State.SUCCESS)


# -- beyond one action: two at once, the feed, the history, the bound ----------------------------------------

def _at_once(*calls):
    """Run the calls together (released by one barrier); each one's answer, OK or REFUSED."""
    barrier, answers = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index, call):
        barrier.wait(5)
        try:
            call()
            answers[index] = OK
        except IllegalTransition:
            answers[index] = REFUSED
        except Exception as error:  # told to the test, which fails on it
            answers[index] = error
    threads = [threading.Thread(target=run, args=(index, call), daemon=True) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ANSWER_WITHIN)
    return answers


def test_two_resubmits_of_one_failed_job_at_once_run_it_once(adapter):
    job_id, _ = _failure(adapter)
    control = CONTROLS[job_id]
    control.hold_at, control.step_go = 0, threading.Event()  # the run again is held in its first step
    answers = _at_once(lambda: adapter.jobs.act(job_id, Action.RESUBMIT),
                       lambda: adapter.jobs.act(job_id, Action.RESUBMIT))
    assert sorted(answers) == sorted([OK, REFUSED]), answers
    assert control.at_step.wait(10)
    control.release()
    _until("Success", lambda: _state(adapter, job_id) == State.SUCCESS)
    assert control.stored == {0, 1, 2}


def test_a_pause_and_a_cancel_at_once_end_the_job_cancelled(adapter):
    job_id, _ = _running(adapter)
    answers = _at_once(lambda: adapter.jobs.act(job_id, Action.PAUSE),
                       lambda: adapter.jobs.act(job_id, Action.CANCEL))
    assert answers == [OK, OK]
    CONTROLS[job_id].release()
    _until("Failure", lambda: _state(adapter, job_id) == State.FAILURE)
    assert adapter.jobs.get(job_id)["ErrorCode"] == model.CANCELED_JOB
    assert CONTROLS[job_id].stored == set()


def _changes_of(adapter, job_id):
    return [change for change in adapter.feed.since(0, 0, limit=100000)["Changes"] if change["ID"] == job_id]


def test_the_feed_numbers_each_change_of_a_job_once_in_order(adapter):
    job_id = _job(adapter, steps=3)
    _until("Success", lambda: _state(adapter, job_id) == State.SUCCESS)
    _until("its end in the feed", lambda: _changes_of(adapter, job_id)[-1:] and
           _changes_of(adapter, job_id)[-1]["State"] == State.SUCCESS)
    changes = _changes_of(adapter, job_id)
    numbers = [change["Seq"] for change in changes]
    assert numbers == sorted(set(numbers)), "numbered once each, in order"
    assert changes[0]["State"] == State.PENDING
    assert [change["State"] for change in changes].count(State.SUCCESS) == 1
    progress = [change["Progress"] for change in changes]
    assert progress == sorted(progress) and progress[-1] == 100
    assert adapter.feed.last() >= numbers[-1]
    # What a client that read up to the job's end asks next: nothing newer of it, at once.
    after = adapter.feed.since(numbers[-1], 0)
    assert all(change["ID"] != job_id for change in after["Changes"])


def test_the_history_keeps_the_newest_finished_jobs(make_adapter):
    adapter = make_adapter(history_size=2)
    ended = []
    for _ in range(3):
        ended.append(_job(adapter, steps=1))
        _until("Success", lambda: _state(adapter, ended[-1]) == State.SUCCESS)
    _until("the oldest forgotten", lambda: adapter.jobs.get(ended[0]) is None)
    assert [adapter.jobs.get(job_id)["State"] for job_id in ended[1:]] == [State.SUCCESS, State.SUCCESS]
    assert ended[0] not in adapter.jobs.ids()


def test_unfinished_jobs_are_bounded_and_room_comes_back_once_they_end(make_adapter):
    adapter = make_adapter(max_pending=2)
    held = _job(adapter, hold_at=0)
    assert CONTROLS[held].at_step.wait(10)
    waiting = _job(adapter)
    with pytest.raises(QueueFull, match="MaxPendingJobs"):
        _job(adapter)
    assert sorted(_state(adapter, job_id) for job_id in (held, waiting)) == [State.PENDING, State.RUNNING]
    CONTROLS[held].release()
    _until("both end", lambda: {_state(adapter, held), _state(adapter, waiting)} == {State.SUCCESS})
    again = _job(adapter, steps=1)
    _until("room again", lambda: _state(adapter, again) == State.SUCCESS)


def test_the_gauges_count_each_job_in_its_state_at_each_scrape(adapter):
    running = _job(adapter, hold_at=0)
    assert CONTROLS[running].at_step.wait(10)
    waiting = _job(adapter)
    paused = _job(adapter)
    adapter.jobs.act(paused, Action.PAUSE)
    _until("paused", lambda: _state(adapter, paused) == State.PAUSED)
    wanted = {("Test", State.RUNNING): 1, ("Test", State.PENDING): 1, ("Test", State.PAUSED): 1}
    _until("the gauges of 3 jobs", lambda: dict(adapter.gauges()) == wanted)
    CONTROLS[running].release()
    adapter.jobs.act(paused, Action.RESUME)
    _until("all three ended", lambda: {_state(adapter, job) for job in (running, waiting, paused)} == {State.SUCCESS})
    assert dict(adapter.gauges()) == {("Test", State.SUCCESS): 3}, "right at the first scrape after the end"


# -- a restart, and a kill -9 at the moments that matter: what was answered survives, each step once ---------

def test_a_restart_keeps_each_job_in_its_state_and_the_unfinished_ones_end(make_adapter):
    adapter = make_adapter()
    succeeded, _ = _success(adapter)
    failed, _ = _failure(adapter)
    paused, _ = _paused(adapter)
    adapter = make_adapter.reopen(adapter, kill=False)
    assert [(adapter.jobs.get(job)["State"], adapter.jobs.get(job)["ErrorCode"]) for job in (succeeded, failed)] \
        == [(State.SUCCESS, 0), (State.FAILURE, OWN_ERROR)]
    assert _state(adapter, paused) == State.PAUSED
    adapter.jobs.act(paused, Action.RESUME)
    _until("Success", lambda: _state(adapter, paused) == State.SUCCESS)
    assert CONTROLS[paused].stored == {0, 1, 2}


def test_a_kill_while_a_job_runs_runs_it_again_to_success_each_step_stored_once(make_adapter):
    adapter = make_adapter()
    job_id, _ = _running(adapter)  # step 0 stored, in step 1
    CONTROLS[job_id].hold_at = None  # run again, it is not held: the killed server's step stays held
    adapter = make_adapter.reopen(adapter, kill=True)
    _until("Success", lambda: _state(adapter, job_id) == State.SUCCESS)
    assert CONTROLS[job_id].stored == {0, 1, 2}


def test_a_kill_after_a_cancel_was_answered_ends_the_job_cancelled_with_nothing_left(make_adapter):
    adapter = make_adapter()
    paused, _ = _paused(adapter)  # it stored steps 0 and 1
    blocker = _job(adapter, hold_at=0)  # the one worker is busy: nobody removes the paused job's work yet
    assert CONTROLS[blocker].at_step.wait(10)
    adapter.jobs.act(paused, Action.CANCEL)
    assert CONTROLS[paused].stored, "it has work to remove"
    CONTROLS[blocker].hold_at = None
    adapter = make_adapter.reopen(adapter, kill=True)
    _until("Failure", lambda: _state(adapter, paused) == State.FAILURE)
    assert adapter.jobs.get(paused)["ErrorCode"] == model.CANCELED_JOB
    assert CONTROLS[paused].stored == set(), "what it stored before the kill is removed too"
    _until("the blocker ran again", lambda: _state(adapter, blocker) == State.SUCCESS)


def test_a_kill_right_after_jobs_ended_keeps_them_ended(make_adapter):
    adapter = make_adapter()
    ended = [_job(adapter, steps=2) for _ in range(3)]
    _until("all ended", lambda: {_state(adapter, job) for job in ended} == {State.SUCCESS})
    adapter = make_adapter.reopen(adapter, kill=True)
    # One server saves a worker's moves within a second: one not saved yet runs again (its steps find their work
    # stored) and ends as it had; the cluster's end is in its row already.
    _until("all ended", lambda: {_state(adapter, job) for job in ended} == {State.SUCCESS})
    assert all(CONTROLS[job].stored == {0, 1} for job in ended)


def test_a_cancel_racing_the_last_step_ends_succeeded_or_cancelled_with_nothing_left(adapter):
    """A worker's last move (its success) and a client's cancel at once: one wins whole. The job ends Success
    with all its work, the cancel having come after it (answered 200: a cancel of a finished job changes
    nothing), or Failure 37 with nothing left; never Success without its work nor Failure with work left."""
    job_id = _job(adapter, steps=2, hold_at=1)
    control = CONTROLS[job_id]
    assert control.at_step.wait(10)
    answers = _at_once(control.step_go.set, lambda: adapter.jobs.act(job_id, Action.CANCEL))
    assert answers == [OK, OK]
    _until("ended", lambda: _state(adapter, job_id) in model.FINISHED)
    job = adapter.jobs.get(job_id)
    assert (job["State"], job["ErrorCode"], control.stored) in (
        (State.SUCCESS, 0, {0, 1}), (State.FAILURE, model.CANCELED_JOB, set())), job
