"""One feed of job changes (plugin and core jobs), numbered, that a client can wait on.

Plugin jobs report every change themselves. Core jobs are followed through Orthanc's
JOB_SUBMITTED, JOB_SUCCESS and JOB_FAILURE events, plus a light periodic look at the
core's jobs (jobs/core.py: never their JSON through the SDK), since the core says nothing
when a job is paused, resumed, progresses, or is cancelled while pending.
"""
import collections
import logging
import threading
import time

from . import model

logger = logging.getLogger(__name__)

KEPT_CHANGES = 10000
CORE_LOOK_EVERY = 1.0  # seconds


def _entry(job, origin):
    return {"ID": job.get("ID"), "Type": job.get("Type"), "State": job.get("State"),
            "Progress": job.get("Progress"), "Timestamp": job.get("Timestamp"), "Origin": origin}


class ChangeFeed:
    """Job changes numbered from 1; the newest KEPT_CHANGES are kept."""

    def __init__(self, kept=KEPT_CHANGES, listeners=(), in_order=None):
        self._listeners = list(listeners)  # called with each recorded change's job JSON
        # (job JSON, change number) -> None, called under the feed's lock: in the feed's order (webhooks)
        self.in_order = in_order
        self._condition = threading.Condition()
        self._changes = collections.deque(maxlen=kept)
        self._last = 0
        self._seen = {}  # job id -> (State, Progress) last reported, to report changes only

    def record(self, job, origin):
        """Report a job's JSON; a change is recorded only if its state, progress or attempt moved."""
        key = (job.get("State"), job.get("Progress"), job.get("Attempt"))  # Attempt: a retried core job's
        with self._condition:
            if self._seen.get(job.get("ID")) == key:
                return
            self._seen[job.get("ID")] = key
            self._last += 1
            self._changes.append(dict(_entry(job, origin), Seq=self._last))
            self._condition.notify_all()
            if self.in_order is not None:
                try:
                    self.in_order(job, self._last)
                except Exception:
                    logger.exception("A job change listener failed")
        for listener in self._listeners:
            try:
                listener(job)
            except Exception:
                logger.exception("A job change listener failed")

    def forget(self, job_id):
        with self._condition:
            self._seen.pop(job_id, None)

    def last(self):
        with self._condition:
            return self._last

    def wait_after(self, seq, timeout):
        """Wait up to `timeout` s for a change numbered above `seq`; the newest number."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._last <= seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return self._last

    def since(self, since, timeout, limit=1000):
        """{"Changes", "Last", "Done"}: changes after `since`, waiting up to `timeout` s for one.

        "Last" is what to ask with next time; a `since` beyond the newest change (the
        plugin restarted) answers the newest number, so that the client starts over.
        """
        self.wait_after(since, timeout)
        with self._condition:
            found = [change for change in self._changes if change["Seq"] > since][:limit]
            if found:
                last = found[-1]["Seq"]
            else:
                last = since if since <= self._last else self._last
            return {"Changes": found, "Last": last, "Done": last >= self._last}


class CoreWatcher:
    """Feeds the core's jobs into a ChangeFeed: on events, and every CORE_LOOK_EVERY seconds."""

    def __init__(self, feed, look, on_look=None, ids=None):
        self._feed, self._look = feed, look  # () -> the core's jobs (CoreJobs.all, on this thread's own)
        self._ids = ids  # () -> the core's job ids: a job left out of a look is gone only if absent there
        self._on_look = on_look  # (the core's jobs) -> None after each look (the cluster publishes them)
        self._latest = []  # the core's jobs at the last look
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def jobs(self):
        """The core's jobs as last seen (no call into Orthanc)."""
        return list(self._latest)

    def changed(self, _job_id=None):
        """A core job event: look now."""
        self._wake.set()

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="advanced-rest-core-jobs", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self):
        listed = {}  # id -> the job's JSON at the last look
        while not self._stop.is_set():
            try:
                jobs = self._look()
                self._latest = jobs
                if self._on_look is not None:
                    self._on_look(jobs)
                for job in jobs:
                    self._feed.record(job, "core")
                now_listed = {job.get("ID"): job for job in jobs}
                gone = set(listed) - set(now_listed)
                if gone and self._ids is not None:
                    # Deleted, or out of the core's history (unreadable ones stay listed by id: not gone)
                    kept = set(self._ids())
                    for job_id in sorted(gone - kept):
                        self._feed.record(dict(listed[job_id], State=model.DELETED), "core")
                    now_listed.update({job_id: listed[job_id] for job_id in gone & kept})
                    gone -= kept
                for job_id in gone:
                    self._feed.forget(job_id)  # out of the core's history
                listed = now_listed
            except Exception:
                logger.exception("Could not look at the core's jobs")
            self._wake.wait(CORE_LOOK_EVERY)
            self._wake.clear()
