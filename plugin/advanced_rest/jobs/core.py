"""The core's jobs, read without ever asking the core for a job's JSON through the SDK.

The core can throw an exception of its own while it builds a job's JSON (Orthanc 1.10 to 1.13: an
empty archive reports a progress of 0/0 until its one step ends, and rounding that NaN throws a boost
error, not an OrthancException). Orthanc's HTTP server turns that into a 400; a call through the SDK
lets it cross into the plugin and end the process. So the ids come from the core's `GET /jobs`
through the SDK (which builds no job's JSON), and each job from the core's `GET /jobs/{id}` through
Orthanc's HTTP server on loopback (the plugin serves /jobs/{id} only for ids of its own form, so that
path reaches the core's handler).
"""
import contextlib
import json
import logging
import threading
import time
import urllib.parse

from ..errors import BadRequest, CoreJobsUnavailable, OrthancError
from . import model

logger = logging.getLogger(__name__)

# A job the core answers 400 for (its JSON cannot be built: the 0/0 window of an empty archive, a few
# milliseconds) is read again after each of these delays (seconds) before it counts as unreadable.
RETRY_DELAYS = (0.02, 0.05, 0.1)
# Requests reading core jobs at once, as a share of Orthanc's HttpThreadsCount: each holds its own HTTP
# thread and needs a second one for its loopback call; beyond it a request waits PERMIT_WAIT, then 503.
LOOPBACK_SHARE = 0.25
PERMIT_WAIT = 2.0  # seconds


def loopback_permits(http_threads):
    """How many requests may read core jobs through the loopback at once, for `http_threads` HTTP threads."""
    return max(1, int(http_threads * LOOPBACK_SHARE))


class _Unreachable(Exception):
    """The loopback cannot be used at all (refused, credentials refused, no HTTP server)."""


class CoreJobs:
    """The core's jobs: ids through the SDK, each job's JSON through Orthanc's HTTP server.

    `list_ids()` returns the core's job ids (the SDK's GET /jobs, raising OrthancError);
    `loopback(path)` returns (status, body) of a GET on Orthanc's HTTP server, raising TimeoutError
    or ConnectionError. `permits` bounds the requests (not the plugin's own threads) reading at once.
    """

    def __init__(self, list_ids, loopback, permits=1, delays=RETRY_DELAYS, permit_wait=PERMIT_WAIT,
                 sleep=time.sleep):
        self._list_ids, self._loopback = list_ids, loopback
        self._permits, self._permit_count = threading.BoundedSemaphore(permits), permits
        self._delays, self._permit_wait, self._sleep = delays, permit_wait, sleep
        self._lock = threading.Lock()
        # Success is final in the core (resubmit only takes a Failure): such a job's JSON is read once
        # for the lists (its Timestamp, the time the core built the JSON, stays the first read's).
        self._succeeded = {}
        self._stuck = set()  # ids still unreadable after the retries: read once per list, not retried
        self._warned = False

    @contextlib.contextmanager
    def _permit(self, in_request):
        if not in_request:
            yield
            return
        if not self._permits.acquire(timeout=self._permit_wait):
            raise CoreJobsUnavailable("%d requests already read the core's jobs through Orthanc's HTTP server (a quarter "
                            "of HttpThreadsCount): try again in a moment" % self._permit_count)
        try:
            yield
        finally:
            self._permits.release()

    def ids(self):
        """The core's job ids (no job's JSON is built for them)."""
        return json.loads(self._list_ids())

    def job(self, job_id, read=None):
        """The core's JSON of one job, or None when the core does not know it (or the loopback
        cannot be used: core jobs are then absent, see the warning in the log).

        `read(path)` -> (status, body): the core's GET as the requester (access.Access.forward, raising
        AccessDenied where the site's rules refuse it); None: as the plugin's own user.

        Raises:
            BadRequest: the core answers 400 for it, retries included (as Orthanc without the plugin).
            CoreJobsUnavailable: too many requests read core jobs, or Orthanc's HTTP server did not answer in time.
            OrthancError: any other error answer of the core.
        """
        if model.is_plugin_job_id(job_id):
            return None  # never the core's: the loopback would reach this plugin's own route again
        with self._permit(True):
            try:
                found, job = self._read(job_id, read)
                for delay in self._delays:
                    if found != "unreadable":
                        break
                    self._sleep(delay)
                    found, job = self._read(job_id, read)
            except _Unreachable:
                return None
        if found == "unreadable":
            raise BadRequest("Orthanc cannot describe core job %s at the moment (its own GET /jobs/%s answers 400)"
                             % (job_id, job_id))
        return job

    def all(self, in_request=True):
        """The core's jobs, in the core's order; a job the core keeps answering 400 for is left out
        (plain Orthanc answers 400 to its whole /jobs?expand then), and so are all of them when the
        loopback cannot be used.

        Raises:
            CoreJobsUnavailable, OrthancError: as `job`; `in_request` False (the plugin's own threads) takes no permit.
        """
        with self._permit(in_request):
            ids = [job_id for job_id in self.ids() if not model.is_plugin_job_id(job_id)]
            with self._lock:
                known = dict(self._succeeded)
                stuck = set(self._stuck)
            jobs, unreadable = {}, []
            try:
                for job_id in ids:
                    if job_id in known:
                        jobs[job_id] = known[job_id]
                        continue
                    found, job = self._read(job_id)
                    if found == "job":
                        jobs[job_id] = job
                    elif found == "unreadable" and job_id not in stuck:
                        unreadable.append(job_id)
                for delay in self._delays:
                    if not unreadable:
                        break
                    self._sleep(delay)
                    again = []
                    for job_id in unreadable:
                        found, job = self._read(job_id)
                        if found == "job":
                            jobs[job_id] = job
                        elif found == "unreadable":
                            again.append(job_id)
                    unreadable = again
            except _Unreachable:
                return []
        listed = set(ids)
        with self._lock:
            self._succeeded = {job_id: job for job_id, job in jobs.items() if job.get("State") == model.State.SUCCESS}
            self._stuck = (stuck & (listed - set(jobs))) | set(unreadable)
        if unreadable:
            logger.info("%d core jobs left out of the list: Orthanc answers 400 for them (e.g. %s)",
                        len(unreadable), unreadable[0])
        return [jobs[job_id] for job_id in ids if job_id in jobs]

    def _read(self, job_id, read=None):
        """("job", its JSON), ("unknown", None) or ("unreadable", None) for one core job.

        Raises:
            _Unreachable: the loopback cannot be used (warned once).
            CoreJobsUnavailable: no answer in time. OrthancError: another error answer.
        """
        try:
            status, body = (read or self._loopback)("/jobs/" + urllib.parse.quote(job_id, safe=""))
        except TimeoutError:
            raise CoreJobsUnavailable("Orthanc's HTTP server did not answer the plugin's read of core job %s in time "
                            "(are all its HTTP threads busy?)" % job_id) from None
        except ConnectionError as error:
            self._unreachable(str(error))
        if status in (401, 403):
            self._unreachable("HTTP %d: the site's rules refuse AdvancedRest.LoopbackUser GET /jobs/{id}" % status)
        self._reachable()
        if status == 200:
            job = json.loads(body)
            return ("job", job) if isinstance(job, dict) else ("unknown", None)
        if status == 404:
            return "unknown", None
        if status == 400:
            return "unreadable", None
        try:
            error = json.loads(body)
            code = error.get("OrthancStatus", -1) if isinstance(error, dict) else -1
        except ValueError:
            code = -1
        raise OrthancError("Orthanc answered HTTP %d to GET /jobs/%s" % (status, job_id),
                           code=code if isinstance(code, int) else -1, status=status)

    def _unreachable(self, reason):
        with self._lock:
            warn, self._warned = not self._warned, True
        if warn:
            logger.warning("The plugin cannot read the core's jobs through Orthanc's own HTTP server (%s): core "
                           "jobs are left out of the plugin's lists, metrics, change feed and webhooks; plugin jobs are "
                           "served. It reads them through http(s)://127.0.0.1:HttpPort as AdvancedRest.LoopbackUser "
                           "(a RegisteredUsers entry the site's rules allow GET /jobs/{id})", reason)
        raise _Unreachable(reason)

    def _reachable(self):
        if self._warned:
            with self._lock:
                was, self._warned = self._warned, False
            if was:
                logger.warning("The plugin reads the core's jobs through Orthanc's HTTP server again")
