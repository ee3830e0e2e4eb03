"""One server's store of the plugin's jobs: every job in memory under one lock, decided as the cluster decides.

Lock rule: a job (model.Job: its JSON and its row's fields) is read and changed only under
`LocalStore._lock`, and only by `_write`, which applies a decisions.Change; runners' steps, and anything
calling Orthanc, run in the workers (workers.WorkerPool) with the lock released.

Every client action and every move a worker reports is decided by jobs/decisions.py on the job's row, as
cluster.replica.Cluster decides it on its row in PostgreSQL: claims carry a token, a cancel of a job that no
worker holds is carried out by the next worker to claim it, a move's Verdict brings the row's requests back.
"""
import datetime
import heapq
import itertools
import logging
import threading
import time

from ..errors import IllegalTransition, UnknownJob
from . import decisions, model
from .model import Action, Claim, Move, Report, State, Verdict

logger = logging.getLogger(__name__)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class LocalStore:
    """The plugin's jobs on one server (interfaces.Jobs for the routes, interfaces.JobStore for its workers).

    `persist()` (optional) makes every job durable; it is called, outside the lock, before a submission or
    an accepted action is answered, so that what the server answered as accepted survives a crash; it raises
    when it cannot: the submission is then refused. `on_change(job JSON)` is told of every change with the lock
    held, so that each job's changes reach it in the order they happened.

    `max_pending` unfinished jobs (Pending, Paused, Running, Retry) holding at most `max_pending_bytes`
    of requests (runner.size()) are accepted at once; a job that waits keeps its request in memory only
    until the store saved it (see `saved`).
    """

    def __init__(self, history_size=10, clock=_now, on_change=None, persist=None, max_pending=None,
                 max_pending_bytes=None):
        self._lock = threading.Condition()
        self._jobs = {}
        self._queue = []  # heap of (-priority, sequence, job id): jobs a worker may claim
        self._queued = set()  # the ids in the heap (each once)
        self._history = {}  # finished job ids, oldest first (a dict: adding twice keeps one)
        self._sequence = itertools.count()
        self._history_size = max(0, history_size)
        self._clock = clock
        self._on_change = on_change
        self._persist = persist
        self._max_pending = max_pending  # None: unbounded
        self._max_pending_bytes = max_pending_bytes  # None: unbounded
        self._loaded = threading.Event()  # set once the saved jobs are back (see mark_loaded)

    # ---- submission and queries (interfaces.Jobs) ------------------------------------------------

    def submit(self, job_type, runner, priority=0, job_id=None):
        """Queue a new job, durable (see `persist`) before it is queued; its id.

        Raises:
            QueueFull: `max_pending` jobs are unfinished, or its request would take theirs over
                `max_pending_bytes`.
            RequestTooLarge: its request alone is over `max_pending_bytes`.
            AdvancedRestError: persisting failed (the job is forgotten).
        """
        size = runner.size()
        content = runner.content()
        with self._lock:
            self._check_room(size)  # counted with the jobs that are visible, not yet durable, too
            document = model.new_document(job_id or model.new_job_id(), job_type, priority, content, self._stamp())
            job = model.Job(document, next(self._sequence), runner, size=size)
            self._jobs[job.id] = job  # visible, but not claimable before it is durable
        try:
            self._save()
        except Exception:
            with self._lock:
                self._jobs.pop(job.id, None)
                self._lock.notify_all()
            raise
        with self._lock:
            if self._jobs.get(job.id) is job:
                self._enqueue(job)
                self._notify(job)
        return job.id

    def get(self, job_id):
        """The JSON of a plugin job, or None."""
        with self._lock:
            job = self._jobs.get(job_id)
            return _json(job) if job else None

    def ids(self):
        """Ids of every plugin job, in submission order."""
        with self._lock:
            return [job.id for job in self._ordered()]

    def all(self):
        """The JSON of every plugin job, in submission order."""
        with self._lock:
            return [_json(job) for job in self._ordered()]

    def wait(self, job_id, timeout):
        """The job's JSON once it is finished, or when `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                job = self._job(job_id)
                remaining = deadline - time.monotonic()
                if job.state in model.FINISHED or remaining <= 0:
                    return _json(job)
                self._lock.wait(remaining)

    def act(self, job_id, action):
        """Apply an Action (cancel, pause, resume, resubmit) as the cluster does (decisions.client_action),
        under the lock in one go, durable before it returns: two requests acting on one job at once are served
        one after the other, and none waits for an undo (the next worker to claim the job carries it out).

        Raises:
            UnknownJob, IllegalTransition or QueueFull or RequestTooLarge (a resubmission, see `submit`).
        """
        with self._lock:
            job = self._job(job_id)
            change = decisions.client_action(action, self._row(job))
            if change is None:
                return
            report = None
            if action == Action.RESUBMIT:  # unfinished again: it needs room as a new job does
                self._check_room(job.size)
                self._history.pop(job.id, None)
                report = Report(content=job.runner.content())
            self._write(job, change, report)
        self._save_or_log()

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
            self._tell(dict(_json(job), State=model.DELETED))
        self._save_or_log()

    # ---- the workers' side (interfaces.JobStore) --------------------------------------------------

    def claim(self, stopping):
        """The first job free to run (or to be undone), priority first, claimed with a new token; None once
        `stopping` (an Event) is set (see `wake`)."""
        with self._lock:
            while True:
                if stopping.is_set():
                    return None
                job = self._next_claimable()
                if job is not None:
                    break
                self._lock.wait()
            job.token += 1
            job.claimed = True
            job.version += 1
            undoing = job.undo is not None
            return Claim(job.id, job.document["Type"], job.token, job.runner, undoing=undoing, replay=job.replay,
                         step=0 if undoing else job.step)

    def move(self, claim, move, report=None):
        """A worker's `move` of the job it claimed, decided by decisions.worker_move and written at once: a
        Verdict (the job's pause and cancel requests), or None when `claim` is not the job's any more."""
        with self._lock:
            job = self._jobs.get(claim.job_id)
            row = self._row(job) if job is not None else None
            decision = decisions.worker_move(move, row, True, claim.token, claim.undoing,
                                             report.error if report is not None else None)
            if decision is decisions.LOST:
                return None
            change, applied = decision
            if change is not None:
                if not change.visible and (claim.undoing or move == Move.BEGIN_UNDO):
                    report = None  # a replay, or an undo beginning: readers see the job as it was
                elif claim.undoing and report is not None:
                    report = Report(content=report.content)  # its end: its progress as it was shown
                if report is not None and report.step is not None:
                    job.step = report.step
                self._write(job, change, report)
            # A cancel outweighs a pause: a job being undone is never asked to pause.
            return Verdict(applied=applied, pause=row.pause_requested and row.undo is None,
                           cancel=row.undo is not None)

    def wake(self):
        """Wake the workers waiting in `claim` (to see their pool stopping)."""
        with self._lock:
            self._lock.notify_all()

    # ---- persistence (store.Store's) --------------------------------------------------------------

    def export(self):
        """Every job as its saved record (model.record_of, with what its row holds besides), with its runner."""
        with self._lock:
            exported = []
            for job in self._ordered():
                record = dict(model.record_of(job.document), CancelRequested=job.undo is not None, RanBefore=job.ran)
                if job.undo is not None:
                    record["Undo"] = dict(job.undo)
                exported.append((record, job.runner))
            return exported

    def restore(self, records, runner_for):
        """Take back jobs saved by `export`; `runner_for(record)` re-creates each runner. Called before the
        workers start.

        Unfinished jobs run again from their first step (their work must be safe to repeat); one whose
        cancel was accepted runs again to find what it stored, then undoes it. Finished ones go back to the
        history."""
        with self._lock:
            for record in records:
                runner = runner_for(record)
                state = State(record["State"])
                if state in (State.RUNNING, State.RETRY):
                    state = State.PENDING
                document = model.document_of(dict(record, State=state), self._stamp())
                job = model.Job(document, next(self._sequence), runner, size=runner.size())
                if state not in model.FINISHED:
                    document.update(Progress=0, Content=runner.content())
                    job.ran = job.replay = bool(record.get("RanBefore", record["State"] in (State.RUNNING, State.RETRY)
                                                           or record.get("Progress", 0)))
                    if record.get("CancelRequested"):
                        job.undo = dict(record.get("Undo") or decisions.CANCELED)
                        job.ran = job.replay = True  # an undo saved: whatever it may have stored is looked for
                self._jobs[job.id] = job
                if state in model.FINISHED:
                    self._history[job.id] = True
                else:
                    self._enqueue(job)
            self._trim_history()

    def saved(self, job_id, load):
        """The store saved the payload of job `job_id`, and `load()` reads it back: from now on the job keeps
        its request in memory only while a worker holds it (or, failed, until it is resubmitted and runs)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.load = load
            if not job.claimed:
                self._park(job)

    def mark_loaded(self):
        """The saved jobs are restored (or there are none to restore): queries may answer."""
        self._loaded.set()

    def loaded(self, timeout=0.0):
        """Whether the saved jobs are restored, waiting up to `timeout` seconds for it."""
        return self._loaded.wait(timeout)

    # ---- internals (call with the lock held) ----------------------------------------------------

    def _job(self, job_id):
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob("No job found with this id: %s" % job_id)
        return job

    @staticmethod
    def _row(job):
        return decisions.Row(job.state, job.version, True if job.claimed else None, job.token, job.ran, job.undo,
                             job.pause_requested)

    def _ordered(self):
        return sorted(self._jobs.values(), key=lambda job: job.sequence)

    def _stamp(self):
        return model.timestamp(self._clock())

    def _write(self, job, change, report=None):
        """Write `change` (a decisions.Change) and `report` to `job`: the one place a job changes."""
        finished_before = job.state in model.FINISHED
        shown = _shown(job.document)
        job.document = decisions.document_after(job.document, change, report, self._stamp())
        job.version += 1
        if change.release:
            job.claimed = False
        if change.undo is not decisions.KEEP:
            job.undo = change.undo
        if change.pause_requested is not decisions.KEEP:
            job.pause_requested = change.pause_requested
        if change.ran is not decisions.KEEP:
            job.ran = change.ran
        if change.reset:
            job.step, job.replay = 0, False
        state = job.state
        if state in model.FINISHED and not finished_before:
            job.undo, job.pause_requested, job.step = None, False, 0
            self._history.pop(job.id, None)
            self._history[job.id] = True
            self._trim_history()
        if not job.claimed:
            if state not in model.FINISHED and (state == State.PENDING or job.undo is not None):
                self._enqueue(job)
            self._park(job)
        self._lock.notify_all()
        if _shown(job.document) != shown:
            self._notify(job)  # its end told too when the history has no room for it

    def _next_claimable(self):
        while self._queue:
            _, _, job_id = heapq.heappop(self._queue)
            self._queued.discard(job_id)
            job = self._jobs.get(job_id)
            if job is not None and not job.claimed and job.state not in model.FINISHED \
                    and (job.state == State.PENDING or job.undo is not None):
                return job
        return None

    def _enqueue(self, job):
        if job.id not in self._queued:
            self._queued.add(job.id)
            heapq.heappush(self._queue, (-job.document["Priority"], job.sequence, job.id))
            self._lock.notify_all()

    def _check_room(self, size):
        unfinished = [job for job in self._jobs.values() if job.state in model.UNFINISHED]
        decisions.check_room(len(unfinished), sum(job.size for job in unfinished), size, self._max_pending,
                             self._max_pending_bytes)

    def _park(self, job):
        """A job that no worker holds lets go of its request where it can have it back (see Runner.park): once
        the store saved it (`saved`), and for good when it succeeded."""
        if job.state == State.SUCCESS:
            job.runner.park(None)
        elif job.load is not None:
            job.runner.park(job.load)

    def _trim_history(self):
        while len(self._history) > self._history_size:
            oldest = next(iter(self._history))
            del self._history[oldest]
            self._jobs.pop(oldest, None)

    def _notify(self, job):
        self._tell(_json(job))

    def _tell(self, snapshot):
        """Tell on_change of a job's new JSON (call with the lock held)."""
        if self._on_change is not None:
            try:
                self._on_change(snapshot)
            except Exception:
                logger.exception("Job change listener failed")

    def _save(self):
        if self._persist is not None:
            self._persist()

    def _save_or_log(self):
        try:
            self._save()
        except Exception:
            logger.exception("Could not save the plugin's jobs")


def _shown(document):
    """What a change must alter to be told: anything but the job's Timestamp and EffectiveRuntime."""
    return {key: value for key, value in document.items() if key not in ("Timestamp", "EffectiveRuntime")}


def _json(job):
    """What GET /jobs/{id} answers of `job`: a copy of its JSON (CompletionTime only once it ended)."""
    document = dict(job.document, Content=dict(job.document.get("Content") or {}))
    if job.state not in model.FINISHED:
        document.pop("CompletionTime", None)
    return document
