"""One server's jobs (jobs/local.py's store and jobs/workers.py's pool) with fake runners: states, transitions,
priorities, history; and the pool against a fake cluster store (what it does with each Verdict)."""
import threading

import pytest

from advanced_rest.errors import BadFileFormat
from advanced_rest.jobs import model
from advanced_rest.errors import IllegalTransition, UnknownJob
from advanced_rest.jobs.workers import Runner
from local_jobs import LocalJobs
from advanced_rest.jobs.model import Move, State


class Steps(Runner):
    """`count` steps; each waits for `gate` when given; `fail_at` raises there (once)."""

    def __init__(self, count=3, gate=None, fail_at=None, log=None, name=""):
        self.count, self.gate, self.fail_at, self.log, self.name = count, gate, fail_at, log, name
        self.done, self.rolled_back = [], 0

    def steps(self):
        return self.count

    def step(self, index):
        if isinstance(self.gate, threading.Event):
            assert self.gate.wait(10)
        elif self.gate is not None:
            assert self.gate.acquire(timeout=10)
        if index == self.fail_at:
            self.fail_at = None
            raise BadFileFormat("broken at step %d" % index)
        self.done.append(index)
        if self.log is not None:
            self.log.append(self.name)

    def content(self):
        return {"Done": len(self.done)}

    def result(self):
        return {"Done": len(self.done), "Name": self.name}

    def rollback(self):
        self.rolled_back += 1
        self.done.clear()


@pytest.fixture
def engine():
    engine = LocalJobs(concurrent_jobs=1, history_size=10)
    engine.start()
    yield engine
    engine.stop(timeout=5)


def _wait_state(engine, job_id, state, timeout=5):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.get(job_id)["State"] == state:
            return engine.get(job_id)
        time.sleep(0.005)
    raise AssertionError("job %s is %s, not %s" % (job_id, engine.get(job_id)["State"], state))


def test_a_job_runs_to_success_with_its_content_and_keeps_no_output(engine):
    job_id = engine.submit("Test", Steps(name="a"), priority=3)
    job = engine.wait(job_id, 5)
    assert (job["State"], job["Progress"], job["Type"], job["Priority"]) == ("Success", 100, "Test", 3)
    assert job["Content"] == {"Done": 3, "Name": "a"} and job["ErrorCode"] == 0
    assert "CompletionTime" in job and job["CreationTime"] <= job["CompletionTime"]
    assert not hasattr(engine, "output")  # no job type produces one yet (README, Jobs)


def test_priority_then_submission_order(engine):
    gate, log = threading.Event(), []
    blocker = engine.submit("Test", Steps(1, gate=gate))
    _wait_state(engine, blocker, "Running")
    ids = [engine.submit("Test", Steps(1, log=log, name=name), priority=priority)
           for name, priority in (("low", -1), ("first-high", 5), ("mid", 0), ("second-high", 5))]
    gate.set()
    for job_id in ids:
        engine.wait(job_id, 5)
    assert log == ["first-high", "second-high", "mid", "low"]


def test_pause_and_cancel_of_pending_jobs_act_at_once(engine):
    gate = threading.Event()
    blocker = engine.submit("Test", Steps(1, gate=gate))
    _wait_state(engine, blocker, "Running")
    paused, cancelled = engine.submit("Test", Steps()), engine.submit("Test", Steps())
    engine.act(paused, "pause")
    engine.act(cancelled, "cancel")
    assert engine.get(paused)["State"] == "Paused"
    job = engine.get(cancelled)
    assert (job["State"], job["ErrorCode"], job["ErrorDescription"]) == ("Failure", 37, "This job was canceled")
    gate.set()
    engine.wait(blocker, 5)
    assert engine.get(paused)["State"] == "Paused"
    engine.act(paused, "resume")
    assert engine.wait(paused, 5)["State"] == "Success"


def test_a_running_job_pauses_between_steps_and_resumes_where_it_was(engine):
    gate = threading.Semaphore(0)
    runner = Steps(4, gate=gate)
    job_id = engine.submit("Test", runner)
    gate.release()
    _wait_state(engine, job_id, "Running")
    engine.act(job_id, "pause")
    gate.release()
    job = _wait_state(engine, job_id, "Paused")
    assert 0 < job["Progress"] < 100
    engine.act(job_id, "resume")
    for _ in range(4):
        gate.release()
    assert engine.wait(job_id, 5)["State"] == "Success"
    assert runner.done == [0, 1, 2, 3]


def test_cancelling_a_running_job_rolls_its_work_back(engine):
    gate = threading.Semaphore(0)
    runner = Steps(4, gate=gate)
    job_id = engine.submit("Test", runner)
    gate.release()
    _wait_state(engine, job_id, "Running")
    engine.act(job_id, "cancel")
    gate.release()
    job = engine.wait(job_id, 5)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37)
    assert runner.rolled_back == 1 and runner.done == []


def test_a_failing_step_fails_the_job_and_the_worker_lives_on(engine):
    runner = Steps(3, fail_at=1)
    job_id = engine.submit("Test", runner)
    job = engine.wait(job_id, 5)
    assert (job["State"], job["ErrorCode"], job["ErrorDetails"]) == ("Failure", 15, "broken at step 1")
    assert runner.rolled_back == 1
    assert engine.wait(engine.submit("Test", Steps()), 5)["State"] == "Success"
    engine.act(job_id, "resubmit")
    job = engine.wait(job_id, 5)
    assert (job["State"], job["ErrorCode"], job["Content"]["Done"]) == ("Success", 0, 3)


@pytest.mark.parametrize("action, state", [
    ("resume", "Success"), ("resubmit", "Success"), ("resume", "Failure"),
])
def test_illegal_transitions_are_refused(engine, action, state):
    job_id = engine.submit("Test", Steps(1, fail_at=0 if state == "Failure" else None))
    engine.wait(job_id, 5)
    with pytest.raises(IllegalTransition):
        engine.act(job_id, action)


def test_finished_jobs_accept_pause_and_cancel_without_change(engine):
    job_id = engine.submit("Test", Steps(1))
    engine.wait(job_id, 5)
    engine.act(job_id, "pause")
    engine.act(job_id, "cancel")
    assert engine.get(job_id)["State"] == "Success"


def test_unknown_ids():
    engine = LocalJobs()
    for call in (lambda: engine.act("nope", "pause"), lambda: engine.delete("nope"),
                 lambda: engine.wait("nope", 0)):
        with pytest.raises(UnknownJob):
            call()


def test_history_keeps_the_newest_finished_jobs():
    engine = LocalJobs(concurrent_jobs=1, history_size=2)
    engine.start()
    try:
        ids = [engine.submit("Test", Steps(1)) for _ in range(3)]
        engine.wait(ids[-1], 5)  # one worker, equal priorities: the others finished before
        assert engine.ids() == ids[1:]
    finally:
        engine.stop(5)


def test_only_finished_jobs_can_be_deleted(engine):
    gate = threading.Event()
    job_id = engine.submit("Test", Steps(1, gate=gate))
    with pytest.raises(IllegalTransition):
        engine.delete(job_id)
    gate.set()
    engine.wait(job_id, 5)
    engine.delete(job_id)
    assert engine.get(job_id) is None


def test_wait_returns_at_the_timeout_with_the_current_state(engine):
    gate = threading.Event()
    job_id = engine.submit("Test", Steps(1, gate=gate))
    assert engine.wait(job_id, 0.05)["State"] in ("Pending", "Running")
    gate.set()


def test_stopping_puts_a_running_job_back_to_pending():
    gate = threading.Semaphore(0)
    engine = LocalJobs(concurrent_jobs=1)
    engine.start()
    job_id = engine.submit("Test", Steps(3, gate=gate))
    gate.release()
    _wait_state(engine, job_id, "Running")
    stopper = threading.Thread(target=engine.stop)
    stopper.start()
    gate.release()
    stopper.join(5)
    assert engine.get(job_id)["State"] == State.PENDING


# ---- one transition table, atomic moves ------------------------------------------------------

class SlowUndo(Steps):
    """Its rollback takes a while: room for a second request to act meanwhile."""

    def rollback(self):
        import time
        time.sleep(0.05)
        super().rollback()


def _blocked(engine):
    """A running job that holds the only worker until its gate is set."""
    gate = threading.Event()
    blocker = engine.submit("Test", Steps(1, gate=gate))
    _wait_state(engine, blocker, "Running")
    return gate


def _storm(engine, job_id, actions, rounds=5):
    """Every action from its own thread, all at once, `rounds` times; unexpected errors collected."""
    errors = []

    def act(action):
        try:
            if action == "delete":
                engine.delete(job_id)
            else:
                engine.act(job_id, action)
        except (IllegalTransition, UnknownJob):
            pass
        except Exception as error:  # anything else is a bug
            errors.append(error)

    for _ in range(rounds):
        barrier_threads = [threading.Thread(target=act, args=(a,)) for a in actions]
        for thread in barrier_threads:
            thread.start()
        for thread in barrier_threads:
            thread.join(10)
    return errors


def test_two_cancels_of_one_pending_job_at_once_finish_it_once(engine):
    gate = _blocked(engine)
    runner = SlowUndo(3)
    job_id = engine.submit("Test", runner)
    assert _storm(engine, job_id, ["cancel", "cancel"], rounds=1) == []
    job = engine.get(job_id)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37)  # it never ran: nothing to remove, at once
    assert runner.done == [] and runner.rolled_back == 0
    assert list(engine._history).count(job_id) == 1
    gate.set()
    assert engine.wait(engine.submit("Test", Steps()), 5)["State"] == "Success"


def test_two_cancels_of_one_paused_job_that_ran_remove_its_work_once(engine):
    gate = threading.Semaphore(0)
    runner = SlowUndo(3, gate=gate)
    job_id = engine.submit("Test", runner)
    _wait_state(engine, job_id, "Running")
    engine.act(job_id, "pause")
    gate.release()
    _wait_state(engine, job_id, "Paused")
    assert runner.done == [0]
    assert _storm(engine, job_id, ["cancel", "cancel"], rounds=1) == []
    job = engine.wait(job_id, 5)  # answered at once; the next free worker removes its work
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37)
    assert runner.rolled_back == 1 and runner.done == []
    assert list(engine._history).count(job_id) == 1


@pytest.mark.parametrize("actions", [
    ["pause", "cancel"], ["cancel", "resume"], ["resubmit", "delete"], ["pause", "resume", "cancel"],
    ["cancel", "resubmit", "delete", "pause", "resume"],
], ids="+".join)
def test_storms_of_actions_leave_a_consistent_engine_whose_workers_still_run_jobs(actions):
    engine = LocalJobs(concurrent_jobs=2, history_size=3)
    engine.start()
    try:
        ids = [engine.submit("Test", SlowUndo(2)) for _ in range(4)]
        for job_id in ids:
            assert _storm(engine, job_id, actions) == []
        for job_id in ids:
            job = engine.get(job_id)
            assert job is None or job["State"] in model.STATES
        history = list(engine._history)
        assert len(history) == len(set(history)) <= 3
        assert all(job_id in engine._jobs for job_id in history)
        for job_id in ids:  # whatever is left unfinished can still finish
            if engine.get(job_id) is not None and engine.get(job_id)["State"] == "Paused":
                engine.act(job_id, "resume")
        assert engine.wait(engine.submit("Test", Steps()), 5)["State"] == "Success"
        assert all(thread.is_alive() for thread in engine.workers._threads)
    finally:
        engine.stop(5)


def test_every_move_of_the_workers_is_in_the_one_table():
    for event, state in [(Move.START, State.PENDING), (Move.SUCCEED, State.RUNNING), (Move.FAIL, State.RUNNING),
                         (Move.CANCELLED, State.RUNNING), (Move.SUSPEND, State.RUNNING), (Move.STOP, State.RUNNING)]:
        assert model.outcome(event, state) is not None
    assert model.outcome(Move.START, State.RUNNING) is None  # one job never starts twice


class BrokenContent(Steps):
    """Its content() raises once the job has run: a bug of a runner, not of a step."""

    def content(self):
        if self.done:
            raise RuntimeError("broken content")
        return {}


def test_a_worker_survives_any_exception_and_the_job_still_ends(engine, caplog):
    job_id = engine.submit("Test", BrokenContent(2))
    assert engine.wait(job_id, 5)["State"] == "Failure"
    assert engine.wait(engine.submit("Test", Steps()), 5)["State"] == "Success"


def test_a_submission_is_persisted_before_it_is_queued():
    seen = []
    engine = LocalJobs(concurrent_jobs=1)
    engine._persist = lambda: seen.append([(record["ID"], record["State"]) for record, _ in engine.export()])
    job_id = engine.submit("Test", Steps(1))
    assert seen == [[(job_id, "Pending")]]
    assert engine._queue  # queued once persisted


def test_a_submission_that_cannot_be_persisted_is_refused_and_forgotten():
    def fail():
        raise BadFileFormat("disk gone")
    engine = LocalJobs(concurrent_jobs=1, persist=fail)
    with pytest.raises(BadFileFormat):
        engine.submit("Test", Steps(1))
    assert engine.all() == [] and not engine._queue


def test_accepted_actions_are_persisted_before_they_return(engine):
    saved = []
    gate = threading.Semaphore(0)
    job_id = engine.submit("Test", Steps(2, gate=gate))
    _wait_state(engine, job_id, "Running")
    engine._persist = lambda: saved.append({r["ID"]: (r["State"], r["CancelRequested"]) for r, _ in engine.export()})
    engine.act(job_id, "pause")
    gate.release()
    _wait_state(engine, job_id, "Paused")
    blocker = _blocked(engine)  # the only worker: the cancel's undo waits for it
    engine.act(job_id, "cancel")
    # the cancel is saved before it is answered, its undo not begun: a crash then still ends the job in Failure
    assert saved[-1][job_id] == ("Paused", True)
    blocker.set()
    assert (engine.wait(job_id, 5)["ErrorCode"]) == 37


def test_a_full_queue_refuses_with_503():
    from advanced_rest.errors import QueueFull
    engine = LocalJobs(concurrent_jobs=1, max_pending=2)  # not started: everything stays pending
    engine.submit("Test", Steps(1))
    engine.submit("Test", Steps(1))
    with pytest.raises(QueueFull) as caught:
        engine.submit("Test", Steps(1))
    assert caught.value.http_status == 503 and "MaxPendingJobs" in caught.value.details


def test_a_job_restored_with_its_cancel_accepted_runs_again_then_undoes_everything():
    runner = Steps(3)
    engine = LocalJobs(concurrent_jobs=1)
    record = {"ID": "j", "Type": "Test", "Priority": 0, "State": "Running", "Progress": 40,
              "CreationTime": "2026-01-01T00:00:00+00:00", "CompletionTime": None, "Runtime": 0.1,
              "ErrorCode": 0, "ErrorDescription": "Success", "Content": {}, "CancelRequested": True}
    engine.restore([record], lambda record: runner)
    engine.start()
    try:
        job = engine.wait("j", 5)
        assert (job["State"], job["ErrorCode"]) == ("Failure", 37)
        assert runner.rolled_back == 1 and runner.done == []
    finally:
        engine.stop(5)


# -- the pool against a cluster's store, faked: what the workers do with each Verdict ------------------------

class FakeStore:
    """A JobStore (interfaces.JobStore) handing out one claim, answering each move with `verdict(move, report)`
    as a cluster's row would; the moves recorded. `idle` is set once the worker asks for its next claim."""

    def __init__(self, claim, verdict):
        self._claim, self.verdict, self.moves = claim, verdict, []
        self.idle = threading.Event()

    def claim(self, stopping):
        claim, self._claim = self._claim, None
        if claim is None:
            self.idle.set()
            stopping.wait()
            return None
        return claim

    def move(self, claim, move, report=None):
        self.moves.append((move, claim.token))
        return self.verdict(move, report)

    def wake(self):
        pass


def _pool_ran(claim, verdict):
    """The moves one worker reported while running `claim` to its stop."""
    from advanced_rest.jobs.workers import WorkerPool
    store = FakeStore(claim, verdict)
    pool = WorkerPool(store, concurrent_jobs=1)
    pool.start()
    try:
        assert store.idle.wait(5)
    finally:
        pool.stop(5)
    return store.moves


def test_a_worker_whose_claim_is_lost_stops_and_undoes_nothing():
    steps = Steps(10)
    moves = _pool_ran(model.Claim("lost", "Test", 4, steps),
                      lambda move, report: None if move == "step" and report.progress >= 30 else model.Verdict())
    assert steps.done == [0, 1, 2] and steps.rolled_back == 0
    assert moves[-1] == (Move.STEP, 4) and {token for _, token in moves} == {4}


def test_a_cancel_read_from_the_row_at_the_end_undoes_instead_of_succeeding():
    steps = Steps(2)
    moves = _pool_ran(model.Claim("late-cancel", "Test", 1, steps),
                      lambda move, report: model.Verdict(applied=False, cancel=True) if move == "succeed"
                      else model.Verdict(cancel=move not in ("start", "step")))
    assert steps.rolled_back == 1
    assert [move for move, _ in moves][-3:] == ["succeed", "undo", "undone"]


def test_a_replay_to_undo_runs_to_its_end_whatever_the_row_asks_then_undoes():
    steps = Steps(3)
    moves = _pool_ran(model.Claim("replay", "Test", 9, steps, undoing=True, replay=True),
                      lambda move, report: model.Verdict(pause=True, cancel=True))
    assert steps.done == [] and steps.rolled_back == 1  # all three stored again, then all removed
    assert [move for move, _ in moves][-2:] == ["cancelled", "undone"] and "suspend" not in [m for m, _ in moves]


def test_a_claim_to_undo_whose_runner_knows_its_work_removes_it_without_running_again():
    steps = Steps(3)
    moves = _pool_ran(model.Claim("undo", "Test", 3, steps, undoing=True), lambda move, report: model.Verdict())
    assert steps.done == [] and steps.rolled_back == 1
    assert [move for move, _ in moves] == ["undo", "undone"]


def test_a_job_paused_at_its_first_step_lets_go_before_running_it():
    runner = Parkable(3)
    moves = _pool_ran(model.Claim("let-go", "Test", 2, runner), lambda move, report: model.Verdict(pause=move == "step"))
    assert [move for move, _ in moves] == ["start", "step", "suspend"] and runner.done == []


def test_every_job_change_reaches_on_change_in_the_order_it_happened():
    # The submitting thread is slow to tell of the new Pending job (a loaded machine): the worker that
    # starts the job meanwhile must not tell of Running first (the feed showed Running, Pending, Running;
    # webhooks sent JobRunning twice).
    import time
    told = []

    def on_change(job):
        if job["State"] == State.PENDING:
            time.sleep(0.05)
        told.append((job["ID"], job["State"]))

    engine = LocalJobs(concurrent_jobs=2, history_size=50, on_change=on_change)
    engine.start()
    try:
        ids = [engine.submit("Test", Steps(count=2)) for _ in range(5)]
        for job_id in ids:
            _wait_state(engine, job_id, State.SUCCESS)
    finally:
        engine.stop(timeout=5)
    for job_id in ids:
        states = [state for told_id, state in told if told_id == job_id]
        assert states == [State.PENDING] + [State.RUNNING] * 3 + [State.SUCCESS], states  # started, 50 %, 100 %


# -- bounded whatever the state: MaxPendingJobs, MaxPendingBytes, and what a waiting job keeps ------------

class Sized(Steps):
    """Steps holding a request of `size` bytes."""

    def __init__(self, size, count=1, **kw):
        super().__init__(count, **kw)
        self._size = size

    def size(self):
        return self._size


class Parkable(Steps):
    """Steps whose request goes when parked and comes back from `load()` at its next step."""

    def __init__(self, count=3, **kw):
        super().__init__(count, **kw)
        self.request, self.parks, self.loads, self._load = "request", [], 0, None

    def park(self, load):
        self.parks.append(load)
        self.request, self._load = None, load

    def step(self, index):
        if self.request is None:
            self.request, self.loads = self._load(), self.loads + 1
        assert self.request == "request"
        super().step(index)


def test_max_pending_jobs_counts_running_and_paused_jobs_too():
    from advanced_rest.errors import QueueFull
    gate = threading.Event()
    engine = LocalJobs(concurrent_jobs=1, max_pending=3)
    engine.start()
    try:
        running = engine.submit("Test", Steps(1, gate=gate))
        _wait_state(engine, running, "Running")
        paused = engine.submit("Test", Steps(1))
        engine.act(paused, "pause")
        engine.submit("Test", Steps(1))
        before = engine.all()
        with pytest.raises(QueueFull) as caught:
            engine.submit("Test", Steps(1))
        assert caught.value.http_status == 503 and caught.value.retry_after > 0
        assert "3 plugin jobs are unfinished" in caught.value.details
        assert "AdvancedRest.MaxPendingJobs is 3" in caught.value.details
        assert engine.all() == before, "a refused job leaves no trace"
        engine.act(paused, "cancel")  # its end gives its room back
        assert engine.get(engine.submit("Test", Steps(1)))["State"] == "Pending"
    finally:
        gate.set()
        engine.stop(5)


def test_max_pending_bytes_bounds_the_requests_of_unfinished_jobs():
    from advanced_rest.errors import QueueFull, RequestTooLarge
    engine = LocalJobs(concurrent_jobs=1, max_pending_bytes=100)  # not started: everything stays unfinished
    first = engine.submit("Test", Sized(60))
    engine.act(first, "pause")
    with pytest.raises(QueueFull) as caught:
        engine.submit("Test", Sized(41))
    assert caught.value.http_status == 503
    assert "hold 60 bytes" in caught.value.details and "41 more" in caught.value.details
    assert "AdvancedRest.MaxPendingBytes (100)" in caught.value.details
    engine.submit("Test", Sized(40))  # exactly the budget
    with pytest.raises(RequestTooLarge) as caught:  # no wait would ever make room: 413, not 503
        engine.submit("Test", Sized(101))
    assert caught.value.http_status == 413 and "AdvancedRest.MaxPendingBytes (100)" in caught.value.details
    assert len(engine.ids()) == 2
    engine.act(first, "cancel")
    engine.submit("Test", Sized(60))


def test_a_resubmission_needs_room_as_a_submission_does():
    from advanced_rest.errors import QueueFull
    engine = LocalJobs(concurrent_jobs=1, max_pending=1)  # not started
    failed = engine.submit("Test", Steps(1))
    engine.act(failed, "cancel")
    waiting = engine.submit("Test", Steps(1))
    with pytest.raises(QueueFull):
        engine.act(failed, "resubmit")
    assert engine.get(failed)["State"] == "Failure"
    engine.act(waiting, "cancel")
    engine.act(failed, "resubmit")
    assert engine.get(failed)["State"] == "Pending"


def test_a_saved_job_waits_without_its_request_and_resumes_from_its_step():
    gate = threading.Semaphore(0)
    engine = LocalJobs(concurrent_jobs=1)
    waiting = Parkable(1)
    waiting_id = engine.submit("Test", waiting)

    def load():  # what the store would read back
        return "request"
    engine.saved(waiting_id, load)
    assert waiting.parks == [load], "a pending job lets its request go once it is saved"
    engine.start()
    try:
        assert engine.wait(waiting_id, 5)["State"] == "Success" and waiting.loads == 1
        assert waiting.parks[-1] is None, "a success never runs again: it keeps nothing"
        runner = Parkable(3, gate=gate)
        job_id = engine.submit("Test", runner)
        _wait_state(engine, job_id, "Running")
        engine.saved(job_id, load)
        assert runner.parks == [], "never while a step may run"
        engine.act(job_id, "pause")
        gate.release()
        _wait_state(engine, job_id, "Paused")
        assert runner.parks == [load] and runner.request is None
        engine.act(job_id, "resume")
        for _ in range(2):
            gate.release()
        assert engine.wait(job_id, 5)["State"] == "Success"
        assert runner.done == [0, 1, 2] and runner.loads == 1, "it goes on from its step, its request read back"
    finally:
        engine.stop(5)


def test_a_job_not_saved_keeps_its_request():
    engine = LocalJobs(concurrent_jobs=1)  # SaveJobs false: nowhere else to keep it
    runner = Parkable(1)
    job_id = engine.submit("Test", runner)
    engine.act(job_id, "pause")
    assert runner.parks == [] and runner.request == "request"
