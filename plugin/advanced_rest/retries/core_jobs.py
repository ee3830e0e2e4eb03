"""The core's failed jobs run again on their own (AdvancedRest.Retries), on one server.

One table, under one lock, holds each core job a policy took: its attempts, when it runs next, its first
failure. Every change of the table is saved (one global property) before it counts: before an action on
it is answered, before the job is resubmitted. The table is changed in one place, `_decide`, from what the
core shows of the job (the look at the core's jobs every second and on its events, and any read of a core
job under {Root}), and by the actions.

How the plugin shows a job the table holds (`shape`): waiting, `"State": "Retry"` with `Attempt` (1 for
the first run) and `NextAttempt`; held by a pause, `Paused`; cancelled, `Failure` with ErrorCode 37; running
again, the core's state with its `Attempt`. The core's own GET /jobs/{id} keeps answering what the core knows.

A job runs again only through the core's `resubmit`, which the core accepts for a failed job only: a job is
never run twice for one failure, whatever crashed between a resubmission and its save. The resubmission is
asked under the table's lock, so that an action on the job is decided before it or after it, never between.
"""
import datetime
import json
import logging
import random as random_
import threading
import time

from .. import backoff
from ..errors import IllegalTransition
from ..jobs import model
from ..jobs.model import Action, State

logger = logging.getLogger(__name__)

RETRIES_PROPERTY = 7399  # the table, JSON (the webhooks' outbox is 7300, the plugin's jobs 7400-7999)
FORMAT = 1

WAITING, PAUSED, RESUBMITTED = "Waiting", "Paused", "Resubmitted"  # the table's hold on the job
SUCCEEDED, GAVE_UP, CANCELLED, LOST, REFUSED = "Succeeded", "GaveUp", "Cancelled", "Lost", "Refused"  # ended
ACTIVE = (WAITING, PAUSED, RESUBMITTED)
HELD = (WAITING, PAUSED)  # not running: the table's actions apply
IDLE_WAIT = 1.0  # seconds the resubmitting thread sleeps when nothing is due sooner
PRUNE_EVERY = 60.0  # seconds between two looks for jobs the core no longer knows (deleted, out of its history)


def _stamp(seconds):
    return model.timestamp(datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc))


class CoreRetries:
    """The core's jobs under AdvancedRest.Retries `policies` (settings.RetryPolicy).

    `resubmit(job_id)` asks the core to run a failed job again (raises when it refuses); `listed()` gives the
    core's job ids; `get_property`/`set_property` keep the table; `count(job_type, outcome)` counts what
    happens (metrics). At most `max_waiting` jobs are held at once; a failure beyond that is not retried.
    """

    def __init__(self, policies, get_property, set_property, resubmit, listed, max_waiting=1000, count=None,
                 clock=time.time, random=random_.random):
        self._policies = policies
        self._get, self._set = get_property, set_property
        self._resubmit, self._listed = resubmit, listed
        self._max_waiting = max_waiting
        self._count = count or (lambda job_type, outcome: None)
        self._clock, self._random = clock, random
        self._lock = threading.Condition()
        self._entries = {}  # job id -> entry (dict, JSON as saved), oldest first
        self._stop = threading.Event()
        self._thread = None
        self._next_prune = 0.0  # when the resubmitting thread next forgets the jobs the core no longer knows

    # ---- lifecycle ---------------------------------------------------------------------------

    def load(self):
        """Take the table back as saved (a restart: the jobs that waited wait on, at their time)."""
        try:
            saved = json.loads(self._get(RETRIES_PROPERTY) or "{}")
        except ValueError:
            logger.error("The saved table of job retries cannot be read; starting without it")
            return
        if saved and saved.get("Format") != FORMAT:
            logger.error("The saved table of job retries is of an unknown format; starting without it")
            return
        with self._lock:
            self._entries = {entry["ID"]: entry for entry in saved.get("Entries", [])}
        waiting = sum(1 for entry in self._entries.values() if entry["Status"] in HELD)
        if waiting:
            logger.warning("%d core job(s) wait in Retry since before the restart", waiting)

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="advanced-rest-retries", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(10)

    # ---- what the plugin shows ----------------------------------------------------------------

    def view(self, core_jobs):
        """`core_jobs` (jobs.core.CoreJobs) whose every job is shown as `shape` makes it."""
        return _View(core_jobs, self)

    def shape(self, job):
        """The core's JSON of a job as the plugin shows it (see the module); decides first what the core's news
        of it means for its retries."""
        with self._lock:
            entry = self._decide(job)
            if entry is None:
                return job
            return self._shown(job, entry)

    def holds(self, job_id):
        """Whether the job waits in Retry (or is held there by a pause): it is not finished."""
        with self._lock:
            entry = self._entries.get(job_id)
            return entry is not None and entry["Status"] in HELD

    def act(self, job_id, action):
        """Carry out `action` on a job that waits in Retry (or paused there), saved before this returns; False
        when the table does not hold the job (the core's action then applies).

        cancel: it fails for good (ErrorCode 37) and never runs again; pause: held until resumed; resume:
        back on its schedule; resubmit: it runs now.

        Raises:
            IllegalTransition: resume of a job that is not paused (the core's 400).
        """
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is None or entry["Status"] not in HELD:
                return False
            status = entry["Status"]
            if action == Action.CANCEL:
                self._end(entry, CANCELLED)
            elif action == Action.PAUSE:
                entry["Status"] = PAUSED
            elif action == Action.RESUME:
                if status != PAUSED:
                    raise IllegalTransition("Cannot resume a job in state Retry")
                entry["Status"] = WAITING
            elif action == Action.RESUBMIT:
                entry.update(Status=WAITING, NextAttempt=self._clock())
            self._save()
            self._lock.notify_all()
        return True

    def gauges(self):
        """(jobs waiting in Retry or paused there, by type: {type: count}; seconds the oldest due one is late)."""
        now = self._clock()
        with self._lock:
            held = [entry for entry in self._entries.values() if entry["Status"] in HELD]
            counts = {}
            for entry in held:
                counts[entry["Type"]] = counts.get(entry["Type"], 0) + 1
            due = [now - entry["NextAttempt"] for entry in held if entry["Status"] == WAITING
                   and entry["NextAttempt"] <= now]
        return counts, max(due, default=0.0)

    # ---- the one place the table changes on the core's news (call with the lock held) -------------------

    def _decide(self, job):
        """The entry of `job` once what the core shows of it is taken into account (saved if it changed), or
        None when the table has nothing to do with it."""
        job_id, state = job.get("ID"), job.get("State")
        entry = self._entries.get(job_id)
        failed_at = job.get("CompletionTime")
        if entry is None:
            if state != State.FAILURE:
                return None
            policy = self._policy(job)
            if policy is None:
                return None
            entry = {"ID": job_id, "Type": job.get("Type"), "Attempt": 1, "First": self._clock(), "Failed": failed_at,
                     "NextAttempt": None, "Status": WAITING}
            self._failed(entry, job, policy)
            self._entries[job_id] = entry
            self._trim()
            self._save()
            return entry
        status = entry["Status"]
        if state == State.FAILURE and failed_at != entry["Failed"] and status in ACTIVE:
            # It failed again since it was last seen failing: run again (by the table, or at the core's path).
            if status != RESUBMITTED:  # that run went unseen (resubmitted at the core's path, or before a crash)
                entry["Attempt"] += 1
            entry["Failed"] = failed_at
            policy = self._policy(job)
            if policy is None:
                self._end(entry, GAVE_UP)
            else:
                entry["Status"] = WAITING
                self._failed(entry, job, policy)
            self._save()
        elif state == State.SUCCESS and status in ACTIVE:
            self._end(entry, SUCCEEDED)
            self._save()
        elif state not in (State.FAILURE, State.SUCCESS) and status != RESUBMITTED:
            # Run again by someone else (the core's own resubmit): a new run of the same job.
            if status in (WAITING, PAUSED):
                entry["Attempt"] += 1
                entry["Status"] = RESUBMITTED
            else:  # it had ended here: its retries start over should it fail again
                del self._entries[job_id]
                self._save()
                return None
            self._save()
        return entry

    def _failed(self, entry, job, policy):
        """Run `entry["Attempt"]` of the job failed: schedule the next, or give up."""
        if backoff.gives_up(entry["Attempt"], entry["First"], self._clock(), policy):
            self._end(entry, GAVE_UP)
            return
        if sum(1 for other in self._entries.values() if other["Status"] in ACTIVE and other is not entry) \
                >= self._max_waiting:
            logger.warning("Core job %s (%s) is not retried: %d jobs wait in Retry (AdvancedRest.MaxRetryingJobs)",
                           entry["ID"], entry["Type"], self._max_waiting)
            self._end(entry, REFUSED)
            return
        entry["NextAttempt"] = self._clock() + backoff.delay(entry["Attempt"], policy, self._random)
        entry["Status"] = WAITING
        self._count(entry["Type"], "scheduled")
        self._lock.notify_all()

    def _end(self, entry, status):
        entry["Status"], entry["NextAttempt"] = status, None
        self._count(entry["Type"], {SUCCEEDED: "succeeded", GAVE_UP: "gave_up", CANCELLED: "cancelled",
                                    LOST: "lost", REFUSED: "refused"}[status])

    def _policy(self, job):
        for policy in self._policies:
            if policy.retries(job.get("Type"), job.get("ErrorCode")):
                return policy
        return None

    def _shown(self, job, entry):
        status = entry["Status"]
        shown = dict(job, Attempt=entry["Attempt"])
        if status == WAITING:
            shown.update(State=State.RETRY, NextAttempt=_stamp(entry["NextAttempt"]))
            shown.pop("CompletionTime", None)
        elif status == PAUSED:
            shown["State"] = State.PAUSED
            shown.pop("CompletionTime", None)
        elif status == CANCELLED and job.get("State") == State.FAILURE:
            shown.update(ErrorCode=model.CANCELED_JOB, ErrorDescription=model.CANCELED_DESCRIPTION, ErrorDetails="")
        return shown

    def _trim(self):
        """Ended entries beyond `max_waiting` go, the oldest first (they only show a job's Attempt)."""
        ended = [job_id for job_id, entry in self._entries.items() if entry["Status"] not in ACTIVE]
        for job_id in ended[:max(0, len(ended) - self._max_waiting)]:
            del self._entries[job_id]

    def _save(self):
        self._set(RETRIES_PROPERTY, json.dumps({"Format": FORMAT, "Entries": list(self._entries.values())}))

    # ---- the thread that resubmits at their time ---------------------------------------------------------

    def _loop(self):
        while not self._stop.is_set():
            try:
                for job_id in self._due():
                    self._run_again(job_id)
                if self._clock() >= self._next_prune:
                    self._prune()
            except Exception:
                logger.exception("Could not retry the core's failed jobs")
                self._stop.wait(IDLE_WAIT)

    def _due(self):
        """The ids due now, once some are (or the thread stops)."""
        with self._lock:
            while not self._stop.is_set() and self._clock() < self._next_prune:
                due, soonest = self._due_now()
                if due:
                    return due
                self._lock.wait(max(0.01, min(IDLE_WAIT, soonest - self._clock())))
            return []

    def _prune(self):
        """Forget the entries of jobs the core no longer knows (deleted, or out of its history) but those
        waiting, which their retry gives up as lost (counted): a running or ended entry whose job went would
        otherwise stay for good, and take a place under MaxRetryingJobs."""
        self._next_prune = self._clock() + PRUNE_EVERY
        listed = set(self._listed())
        with self._lock:
            gone = [job_id for job_id, entry in self._entries.items()
                    if job_id not in listed and entry["Status"] not in HELD]
            for job_id in gone:
                del self._entries[job_id]
            if gone:
                self._save()

    def _due_now(self):
        """(the ids due now, when the next one is due); call with the lock held."""
        now = self._clock()
        waiting = [entry for entry in self._entries.values() if entry["Status"] == WAITING]
        return ([entry["ID"] for entry in waiting if entry["NextAttempt"] <= now],
                min((entry["NextAttempt"] for entry in waiting), default=now + IDLE_WAIT))

    def _run_again(self, job_id):
        """Resubmit one due job. Under the lock, the core's answer included: an action on the job waits for it
        (a cancel answered while the core was being asked to run the job could not be kept otherwise)."""
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is None or entry["Status"] != WAITING or entry["NextAttempt"] > self._clock():
                return  # an action came first
            try:
                self._resubmit(job_id)
            except Exception as error:
                if job_id not in self._listed():
                    logger.warning("Core job %s (%s) is no longer known to the core at its retry (it left the "
                                   "core's history, JobsHistorySize, or a crash came before Orthanc saved it): "
                                   "given up", job_id, entry["Type"])
                    self._end(entry, LOST)
                    self._save()
                    return
                # Refused for another reason (it is no longer failed: resubmitted at the core's path, seen at
                # the next look): tried again a moment later.
                logger.info("Core job %s: the core refused its retry (%s); tried again later", job_id,
                            type(error).__name__)
                entry["NextAttempt"] = self._clock() + IDLE_WAIT
                return
            entry["Attempt"] += 1
            entry["Status"] = RESUBMITTED
            self._count(entry["Type"], "resubmitted")
            self._save()


class _View:
    """A CoreJobs whose jobs are shown as CoreRetries.shape makes them."""

    def __init__(self, core_jobs, retries):
        self._core_jobs, self._retries = core_jobs, retries

    def ids(self):
        return self._core_jobs.ids()

    def job(self, job_id, read=None):
        job = self._core_jobs.job(job_id, read)
        return self._retries.shape(job) if job is not None else None

    def all(self, in_request=True):
        return [self._retries.shape(job) for job in self._core_jobs.all(in_request)]
