"""The plugin's jobs engine: one lock owns every job; workers take the queue by priority.

Lock rule: job state is read and changed only under `Engine._lock`; a runner's step,
and anything calling Orthanc, runs with the lock released.

In a cluster the engine only executes what its replica claimed: each move of a worker goes
through `fence` (the job's row, compare-and-set, see jobs/cluster/) before it counts, and a
worker whose claim was taken over stops at once and undoes nothing.
"""
import dataclasses
import datetime
import heapq
import itertools
import logging
import threading
import time

from ..errors import AdvancedRestError, IllegalTransition, QueueFull, RequestTooLarge, UnknownJob
from . import model
from .model import Action, Move, Outcome, State

logger = logging.getLogger(__name__)


class Runner:
    """The work of one job, in steps; the engine calls these from a worker thread.

    `steps()` may be called again after a resubmission: a run always starts at step 0,
    or where a pause left it.
    """

    def steps(self):
        """How many steps the job has."""
        raise NotImplementedError

    def step(self, index):
        """Do step `index` (0-based). Raise to fail the job."""
        raise NotImplementedError

    def content(self):
        """The job's Content while it runs and when it fails."""
        return {}

    def result(self):
        """The job's Content once every step succeeded. (No job type has outputs yet, README, Jobs: they come
        back, stored where every replica can serve them, with the first job type that produces one.)"""
        return self.content()

    def rollback(self):
        """Undo what the steps did (called when the job fails or is cancelled)."""

    def payload(self):
        """What re-creating this runner after a restart needs (JSON), or None if it cannot be."""
        return None

    def size(self):
        """Bytes of the request this runner holds (what AdvancedRest.MaxPendingBytes counts)."""
        return 0

    def park(self, load):
        """The job waits or has ended: drop what `load()` (its payload as saved) gives back, and take it
        back from there at the next step; `load` None: the job succeeded and never runs again. The engine
        calls this only while no step runs."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a cluster's fence answers a worker's move: whether it was written, and what the job's
    row asks of the job (a pause or cancel sent to any replica)."""

    applied: bool = True
    pause: bool = False
    cancel: bool = False
    # The claim is lost and the job has since failed (its new owner removed its work): what this
    # worker stored after it lost the claim (a step it was in when frozen) must go too.
    orphaned: bool = False


class Restored(Runner):
    """A job restored without what running it needs: it shows, but cannot run again."""

    def __init__(self, content):
        self._content = content

    def steps(self):
        raise AdvancedRestError("This job was restored after a restart without its request: it cannot run again")

    def content(self):
        return dict(self._content or {})


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


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _parse_time(text):
    return datetime.datetime.fromisoformat(text) if text else None


def _record(job):
    return {
        "ID": job.id, "Type": job.type, "Priority": job.priority, "State": job.state,
        "Progress": job.progress, "CreationTime": job.created.isoformat(),
        "CompletionTime": job.completed.isoformat() if job.completed else None, "Runtime": job.runtime,
        "ErrorCode": job.error_code, "ErrorDescription": job.error_description,
        "ErrorDetails": job.error_details, "Content": job.content,
        "CancelRequested": job.cancel_requested or job.undoing or job.cancel_after_replay,
    }


class Engine:
    """Jobs, their queue and their workers.

    `persist()` (optional) makes every job durable; the engine calls it, outside its lock,
    before answering a submission or an accepted action, so that what the server answered
    as accepted survives a crash. It raises when it cannot: the submission is then refused.

    `max_pending` unfinished jobs (Pending, Paused, Running, Retry) holding at most `max_pending_bytes`
    of requests (runner.size()) are accepted at once; a job that waits keeps its request in memory only
    until the store saved it (see `saved`).
    """

    def __init__(self, concurrent_jobs=2, history_size=10, clock=_now, on_change=None, persist=None,
                 max_pending=None, fence=None, max_pending_bytes=None):
        self._lock = threading.Condition()
        self._jobs = {}
        self._queue = []  # heap of (-priority, sequence, job id)
        self._history = {}  # finished job ids, oldest first (a dict: adding twice keeps one)
        self._sequence = itertools.count()
        self._concurrent_jobs = max(1, concurrent_jobs)
        self._history_size = max(0, history_size)
        self._clock = clock
        # (job JSON) -> None, called with the lock held, so that every job's changes reach it in the
        # order they happened (a change told after the lock is released could be overtaken by a worker's
        # next one: the feed showed a job Running, then Pending again, then Running)
        self._on_change = on_change
        self._persist = persist
        self._max_pending = max_pending  # None: unbounded
        self._max_pending_bytes = max_pending_bytes  # None: unbounded
        self._threads = []
        self._stopping = False
        self._loaded = threading.Event()  # set once the saved jobs are back (see mark_loaded)
        # (job JSON as it would be after the move, move) -> Verdict or None (claim lost); see Fence
        self._fence = fence

    # ---- lifecycle -------------------------------------------------------------

    def start(self):
        """Start the worker threads."""
        with self._lock:
            self._stopping = False
            if self._threads:
                return
            for index in range(self._concurrent_jobs):
                thread = threading.Thread(target=self._work, name="advanced-rest-job-%d" % index, daemon=True)
                self._threads.append(thread)
                thread.start()

    def stop(self, timeout=30.0):
        """Stop the workers after their current step; running jobs go back to Pending."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout)

    # ---- submission and queries ----------------------------------------------------

    def submit(self, job_type, runner, priority=0, job_id=None):
        """Queue a new job, durable (see `persist`) before it is queued; its id.

        Raises:
            QueueFull: `max_pending` jobs are unfinished, or its request would take theirs over
                `max_pending_bytes`.
            RequestTooLarge: its request alone is over `max_pending_bytes`.
            AdvancedRestError: persisting failed (the job is forgotten).
        """
        now = self._clock()
        size = runner.size()
        with self._lock:
            self._check_room(size)  # counted with the jobs that are visible, not yet durable, too
            job = model.Job(id=job_id or model.new_job_id(), type=job_type, priority=int(priority), runner=runner,
                            sequence=next(self._sequence), created=now, changed=now, size=size)
            job.content = runner.content()
            self._jobs[job.id] = job  # visible, but not queued before it is durable
        try:
            self._save()
        except Exception:
            with self._lock:
                self._jobs.pop(job.id, None)
                self._lock.notify_all()
            raise
        with self._lock:
            if job.state == State.PENDING:
                self._enqueue(job)
            self._notify(job.to_json())
        return job.id

    def get(self, job_id):
        """The JSON of a plugin job, or None."""
        with self._lock:
            job = self._jobs.get(job_id)
            return job.to_json() if job else None

    def ids(self):
        """Ids of every plugin job, in submission order."""
        with self._lock:
            return [job.id for job in sorted(self._jobs.values(), key=lambda j: j.sequence)]

    def all(self):
        """The JSON of every plugin job, in submission order."""
        with self._lock:
            return [job.to_json() for job in sorted(self._jobs.values(), key=lambda j: j.sequence)]

    def wait(self, job_id, timeout):
        """The job's JSON once it is finished, or when `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                job = self._job(job_id)
                remaining = deadline - time.monotonic()
                if job.state in model.FINISHED or remaining <= 0:
                    return job.to_json()
                self._lock.wait(remaining)

    # ---- actions ----------------------------------------------------------------------

    def act(self, job_id, action):
        """Apply an Action (cancel, pause, resume, resubmit) as the core does, durable before it returns.

        Decided by model.decide_action, as the cluster decides, and applied under the lock in one go: two
        requests acting on one job at once are served one after the other, and none waits for an undo.

        Raises:
            UnknownJob, IllegalTransition or QueueFull or RequestTooLarge (a resubmission, see `submit`).
        """
        with self._lock:
            job = self._job(job_id)
            decision = model.decide_action(action, job.state, self._undo_code(job), job.pause_requested,
                                           job.ran_before or job.step > 0)
            effect = decision.effect
            if effect is model.Effect.REFUSED:
                raise IllegalTransition(decision.reason)
            if effect is model.Effect.NOTHING:
                return
            if effect is model.Effect.ASK_PAUSE:
                job.pause_requested = True
            elif effect is model.Effect.ASK_CANCEL:
                job.cancel_requested = True
            elif effect is model.Effect.RECANCEL:  # its undo goes on, and ends as a cancel's
                job.undo_error = (model.CANCELED_JOB, model.CANCELED_DESCRIPTION, "")
            elif effect in (model.Effect.UNDO, model.Effect.FAIL):
                # Undo first (nothing to remove for FAIL: its runner's rollback finds nothing), so that whoever
                # sees the Failure finds nothing left behind; meanwhile workers keep off the job.
                self._begin_undo(job, model.CANCELED_JOB, model.CANCELED_DESCRIPTION, "")
            else:
                if action == Action.RESUBMIT:  # unfinished again: it needs room as a new job does
                    self._check_room(job.size)
                    self._history.pop(job.id, None)
                    job.step, job.progress, job.runtime, job.completed = 0, 0.0, 0.0, None
                    job.error_code, job.error_description, job.error_details = 0, "Success", ""
                    job.content = job.runner.content()
                self._set_state(job, decision.state)
                if decision.state == State.PENDING:
                    self._enqueue(job)
                self._notify(job.to_json())
        self._save_or_log()
        if effect in (model.Effect.UNDO, model.Effect.FAIL):
            self._undo(job)

    def delete(self, job_id):
        """Forget a finished job.

        Raises:
            UnknownJob, IllegalTransition (a job that is not finished).
        """
        with self._lock:
            job = self._job(job_id)
            if job.state not in model.FINISHED:
                raise IllegalTransition("Only a finished job can be deleted; this one is %s" % job.state)
            del self._jobs[job_id]
            self._history.pop(job_id, None)
            self._lock.notify_all()
            self._notify(dict(job.to_json(), State=model.DELETED))
        self._save_or_log()

    # ---- persistence ----------------------------------------------------------------------------

    def export(self):
        """Every job as a plain record (JSON-able), with its runner, for the store."""
        with self._lock:
            return [(_record(job), job.runner) for job in sorted(self._jobs.values(), key=lambda j: j.sequence)]

    def restore(self, records, runner_for, claim=None):
        """Take back jobs saved by `export`; `runner_for(record)` re-creates each runner.

        Unfinished jobs run again from their first step (their work must be safe to
        repeat); one whose cancel was accepted runs again to find what it stored, then
        undoes it. Finished ones go back to the history. One server calls it before `start`; a
        cluster's replica, through `adopt`, on a running engine (each job is queued under the lock).
        """
        with self._lock:
            for record in records:
                runner = runner_for(record)
                state = State(record["State"])
                if state in (State.RUNNING, State.RETRY):
                    state = State.PENDING
                job = model.Job(
                    id=record["ID"], type=record["Type"], priority=record["Priority"], runner=runner,
                    sequence=next(self._sequence), state=state,
                    progress=0.0 if state not in model.FINISHED else record["Progress"],
                    created=_parse_time(record["CreationTime"]), changed=self._clock(),
                    completed=_parse_time(record.get("CompletionTime")), runtime=record.get("Runtime", 0.0),
                    error_code=record["ErrorCode"], error_description=record["ErrorDescription"],
                    error_details=record.get("ErrorDetails", ""), content=record.get("Content", {}), claim=claim,
                    size=runner.size())
                if state not in model.FINISHED:
                    job.content = runner.content()
                    job.ran_before = bool(record.get("RanBefore", record["State"] in (State.RUNNING, State.RETRY)
                                                      or record.get("Progress", 0)))
                    if record.get("CancelRequested"):
                        state = job.state = State.PENDING
                        job.cancel_after_replay = True
                self._jobs[job.id] = job
                if state in model.FINISHED:
                    self._history[job.id] = True
                elif state == State.PENDING:
                    self._enqueue(job)
            self._trim_history()

    def saved(self, job_id, load):
        """The store saved the payload of job `job_id`, and `load()` reads it back (one server): from now on the
        job keeps its request in memory only while it runs (or, failed, until it is resubmitted and runs)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.load = load
            if job.state != State.RUNNING and not job.undoing:  # no step runs: a worker takes only a Pending job,
                self._park(job)  # and makes it Running in the same hold of the lock

    def mark_loaded(self):
        """The saved jobs are restored (or there are none to restore): queries may answer."""
        self._loaded.set()

    def loaded(self, timeout=0.0):
        """Whether the saved jobs are restored, waiting up to `timeout` seconds for it."""
        return self._loaded.wait(timeout)

    def adopt(self, record, runner, claim=None):
        """Take one job saved elsewhere (a cluster's claim, passed to its fence) and queue it, as
        `restore` does at start."""
        with self._lock:
            self._jobs.pop(record["ID"], None)
            self._history.pop(record["ID"], None)
        self.restore([record], lambda _record: runner, claim)

    def idle_workers(self):
        """Workers with nothing to do: neither running nor already queued here."""
        with self._lock:
            busy = sum(1 for job in self._jobs.values() if job.state in (State.RUNNING, State.PENDING)
                       and not job.undoing)
            return max(0, self._concurrent_jobs - busy)

    def forget(self, job_id):
        """Drop a job without a trace (it now lives elsewhere: another replica took it over)."""
        with self._lock:
            self._jobs.pop(job_id, None)
            self._history.pop(job_id, None)
            self._lock.notify_all()

    # ---- internals (call with the lock held) -----------------------------------------------

    def _job(self, job_id):
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob("No job found with this id: %s" % job_id)
        return job

    @staticmethod
    def _undo_code(job):
        """The ErrorCode `job` ends with once the removal of its work (under way, or asked) is done; None when
        none is (what model.decide_action is told)."""
        if job.undoing:
            return job.undo_error[0] if job.undo_error else model.CANCELED_JOB
        if job.cancel_requested or job.cancel_after_replay:
            return model.CANCELED_JOB
        return None

    def _begin_undo(self, job, code, description, details):
        """The job's work is to be removed (by `_undo`), then it fails with this error."""
        job.undoing = True
        job.undo_error = (code, description, details)

    def _enqueue(self, job):
        heapq.heappush(self._queue, (-job.priority, job.sequence, job.id))
        self._lock.notify_all()

    def _set_state(self, job, state):
        job.state = state
        job.changed = self._clock()
        self._lock.notify_all()

    def _move(self, job, event):
        """The outcome of a worker's `event` on `job`, from the one table (a bug if refused)."""
        outcome = model.outcome(event, job.state)
        if outcome is None:
            raise RuntimeError("illegal move %s of job %s in state %s" % (event, job.id, job.state))
        return outcome

    def _finish(self, job, state, code, description, details):
        job.error_code, job.error_description, job.error_details = code, description, details
        if state == State.FAILURE:
            try:
                job.content = job.runner.content()
            except Exception:  # the move must happen whatever the runner does
                logger.exception("Job %s: its content could not be read", job.id)
        job.completed = self._clock()
        job.cancel_requested = job.pause_requested = job.cancel_after_replay = job.undoing = False
        job.undo_error = None
        self._set_state(job, state)
        self._park(job)
        self._history.pop(job.id, None)
        self._history[job.id] = True
        self._trim_history()

    def _check_room(self, size):
        unfinished = [job for job in self._jobs.values() if job.state in model.UNFINISHED]
        check_room(len(unfinished), sum(job.size for job in unfinished), size, self._max_pending,
                   self._max_pending_bytes)

    def _park(self, job):
        """A job that no step runs lets go of its request where it can have it back (see Runner.park).

        One server: once the store saved it (`saved`), and for good when it succeeded. Cluster (a fence): the
        job's row holds its request; a job whose claim was let go (Paused, Pending) is forgotten here, since
        whoever claims it next re-creates its runner from the row, and an ended one never runs here again."""
        if self._fence is not None:
            if job.state not in model.FINISHED:
                if self._jobs.get(job.id) is job:
                    del self._jobs[job.id]
                    self._lock.notify_all()
            else:
                job.runner.park(None)
        elif job.state == State.SUCCESS:
            job.runner.park(None)
        elif job.load is not None:
            job.runner.park(job.load)

    def _trim_history(self):
        while len(self._history) > self._history_size:
            oldest = next(iter(self._history))
            del self._history[oldest]
            self._jobs.pop(oldest, None)

    def _next_job(self):
        while self._queue:
            _, _, job_id = heapq.heappop(self._queue)
            job = self._jobs.get(job_id)
            if job is not None and job.state == State.PENDING and not job.undoing:
                return job
        return None

    # ---- workers -----------------------------------------------------------------------------

    def _work(self):
        while True:
            job = None
            try:
                with self._lock:
                    while not self._stopping:
                        job = self._next_job()
                        if job is not None:
                            break
                        self._lock.wait()
                    if self._stopping:
                        return
                    state = self._move(job, Move.START)
                    if self._fence is None:
                        self._set_state(job, state)
                        self._notify(job.to_json())
                    preview = self._preview(job, state)
                if self._fence is not None:
                    if not self._fenced(job, Move.START, preview):
                        continue
                    with self._lock:
                        if self._jobs.get(job.id) is not job or job.state != State.PENDING:
                            continue
                        self._set_state(job, state)
                        self._notify(job.to_json())
                self._run(job)
            except Exception:  # a worker never dies: the job fails, the worker goes on
                logger.exception("A worker of the plugin's jobs engine caught an unexpected error; it goes on")
                if job is not None:
                    self._rescue(job)

    def _rescue(self, job):
        try:
            with self._lock:
                if job.state != State.RUNNING or job.undoing:
                    return
                self._begin_undo(job, -1, "Internal error", "unexpected error in the jobs engine, see Orthanc's log")
            self._undo(job)
        except Exception:
            logger.exception("Could not fail job %s", job.id)

    def _run(self, job):
        runner = job.runner
        try:
            total = max(1, runner.steps())
            done = self._steps(job, runner, total)
            result = self._LOST if done is self._LOST else runner.result() if done else None
        except AdvancedRestError as error:
            self._fail(job, error.code, error.message, error.details or "")
            return
        except Exception as error:  # a job that raises fails; the worker lives on
            logger.exception("Job %s (%s) failed", job.id, job.type)
            self._fail(job, -1, "Internal error", type(error).__name__)
            return
        if result is self._LOST:
            return
        # A second time only when the fence refused the move for a cancel: the job then undoes (Outcome.UNDO).
        for _ in range(2):
            with self._lock:
                event = self._final_event(job, result)
                outcome = self._move(job, event)
                if outcome == State.SUCCESS:
                    preview = self._preview(job, State.SUCCESS, content=result, progress=100.0,
                                            completed=self._clock())
                else:
                    preview = self._preview(job, outcome if outcome != Outcome.UNDO else job.state)
            if outcome == Outcome.UNDO or self._fenced(job, event, preview, must_apply=True):
                break
            with self._lock:
                if self._jobs.get(job.id) is not job:
                    return  # the claim was lost: the new owner has the work
                job.cancel_requested = True  # refused for a cancel (see _fenced): it must undo now
        else:
            raise RuntimeError("job %s: the fence refused its move twice" % job.id)  # _work rescues it
        with self._lock:
            if outcome == Outcome.UNDO:
                self._begin_undo(job, model.CANCELED_JOB, model.CANCELED_DESCRIPTION, "")
            elif outcome == State.SUCCESS:
                job.content = result
                job.progress = 100.0
                self._finish(job, State.SUCCESS, 0, "Success", "")
            else:
                job.cancel_requested = job.pause_requested = False
                self._set_state(job, outcome)
            if outcome != Outcome.UNDO:
                self._notify(job.to_json())
            if outcome in (State.PAUSED, State.PENDING):  # it waits: this worker is done with its runner
                self._park(job)
        if outcome == Outcome.UNDO:
            self._undo(job)

    _LOST = object()  # a worker's claim was taken over (cluster): it stops and undoes nothing

    @staticmethod
    def _final_event(job, result):
        """The worker's event once its steps stopped (`result`: None unless every step is done).

        A cancel outweighs a pause; a replay (restored with its cancel accepted) runs to its end
        whatever is asked, then undoes: only then does it know everything it must remove."""
        if job.cancel_after_replay:
            return Move.CANCELLED if result is not None else Move.STOP
        if job.cancel_requested:
            return Move.CANCELLED
        if result is not None:
            return Move.SUCCEED
        return Move.SUSPEND if job.pause_requested else Move.STOP

    def _steps(self, job, runner, total):
        """Run steps until done, or a pause, cancel or stop is asked; True when all are done, _LOST
        when the claim was lost (cluster: checked against the job's row before every step)."""
        while True:
            if self._fence is not None:
                with self._lock:
                    preview = job.to_json()
                if not self._fenced(job, Move.STEP, preview):
                    return self._LOST
            with self._lock:
                # A replay (restored with its cancel accepted) runs to the end whatever is asked:
                # only then does it know every instance to remove.
                if job.cancel_requested and job.ran_before and not job.cancel_after_replay:
                    # An earlier run may have stored what this one has not reached yet: run to the end
                    # (its steps find their work already stored), so that the undo removes all of it.
                    job.cancel_after_replay = True
                if not job.cancel_after_replay and (job.cancel_requested or job.pause_requested) \
                        or self._stopping:
                    return False
                if job.step >= total:
                    return True
                index = job.step
            began = time.monotonic()
            if index < runner.steps():  # a job of no step still runs once, to produce its result
                runner.step(index)
            with self._lock:
                job.runtime += time.monotonic() - began
                job.step = index + 1
                job.progress = 100.0 * job.step / total
                job.content = runner.content()
                job.changed = self._clock()
                self._lock.notify_all()
                self._notify(job.to_json())

    def _fail(self, job, code, description, details):
        with self._lock:
            self._move(job, Move.FAIL)
            self._begin_undo(job, code, description, details)
        self._undo(job)

    def _undo(self, job):
        """Remove what the job stored (lock released), then move it to Failure with its `undo_error` (a cancel
        accepted meanwhile made that a cancel's, see `act`).

        In a cluster the undo is first recorded in the row (whoever holds the job after a takeover
        undoes it too), and nothing is removed by a worker whose claim was lost."""
        if self._fence is not None:
            with self._lock:
                code, description, details = job.undo_error
                preview = self._preview(job, job.state, error_code=code, error_description=description,
                                        error_details=details)
            if not self._fenced(job, Move.BEGIN_UNDO, preview):
                return
        try:
            job.runner.rollback()
        except Exception:
            logger.exception("Could not undo the work of job %s", job.id)
        with self._lock:
            code, description, details = job.undo_error
        if self._fence is not None:
            with self._lock:
                preview = self._preview(job, State.FAILURE, error_code=code, error_description=description,
                                        error_details=details, completed=self._clock())
            if not self._fenced(job, Move.UNDONE, preview):
                return
        with self._lock:
            code, description, details = job.undo_error or (code, description, details)
            self._finish(job, State.FAILURE, code, description, details)
            self._notify(job.to_json())

    def _preview(self, job, state, **fields):
        """The job's JSON as it would be after a move to `state` (call with the lock held)."""
        changed = dataclasses.replace(job, state=state, changed=self._clock(), **fields)
        if state == State.FAILURE:
            try:
                changed.content = job.runner.content()
            except Exception:
                pass
        return changed.to_json()

    def _fenced(self, job, move, preview, must_apply=False):
        """Whether a worker's `move` counts (always, on one server). In a cluster the fence writes it
        to the job's row if this replica still holds its claim; the row's requests (pause, cancel)
        come back. False when the claim was lost (the job is then forgotten here, its work left to
        the new owner) or, with `must_apply`, when the row refused the move for a cancel."""
        if self._fence is None:
            return True
        verdict = self._fence(preview, move, job.claim)
        if verdict is None or verdict.orphaned:
            logger.warning("Job %s: this replica lost its claim on it (taken over); it stops here and %s", job.id,
                           "removes what it stored since, the job having failed" if verdict else "undoes nothing")
            with self._lock:
                if self._jobs.get(job.id) is job:  # not a newer claim of the same job
                    self._jobs.pop(job.id, None)
                    self._history.pop(job.id, None)
                self._lock.notify_all()
            if verdict is not None:
                try:
                    job.runner.rollback()
                except Exception:
                    logger.exception("Could not remove what job %s stored after losing its claim", job.id)
            return False
        with self._lock:
            if verdict.pause:
                job.pause_requested = True
            if verdict.cancel:
                job.cancel_requested = True
        return verdict.applied or not must_apply

    def _save(self):
        if self._persist is not None:
            self._persist()

    def _save_or_log(self):
        try:
            self._save()
        except Exception:
            logger.exception("Could not save the plugin's jobs")

    def _notify(self, snapshot):
        """Tell on_change of a job's new JSON (call with the lock held)."""
        if self._on_change is not None:
            try:
                self._on_change(snapshot)
            except Exception:
                logger.exception("Job change listener failed")
