"""The monitoring API: GET/DELETE /jobs..., the four actions, outputs, wait; over core and plugin jobs.

Whatever concerns a core job goes to the core: its JSON through Orthanc's HTTP server (jobs/core.py),
actions, outputs and deletions through the SDK (none builds a job's JSON); plugin jobs answer with the
same JSON shapes. Beyond the core: ?state= and ?type= filters, and /jobs/{id}/wait. At the core's
paths the plugin serves /jobs, /jobs/{id}/wait, and /jobs/{id}... of its own ids only.
"""
import contextlib
import dataclasses
import threading
import time
import urllib.parse

from ..errors import BadRequest, IllegalTransition, JobsLoading, MethodNotAllowed, OrthancError, UnknownJob
from ..web import GROUP, Response, json_response, query_number
from . import model

LOAD_WAIT = 10.0  # seconds a request waits for the saved jobs to be loaded at start
MAX_WAIT = 3600.0  # the largest timeout accepted; AdvancedRest.MaxWaitSeconds caps how long it waits


@dataclasses.dataclass(frozen=True)
class WaitLimits:
    """How long one long-poll waits at most, and how many may wait at once (HTTP threads they hold)."""

    max_seconds: float = 60.0
    max_waiting: int = 10


def _core_uri(*parts):
    """/jobs/... on the core with each part percent-encoded: a "?" or "/" in a job id given by the
    client must stay part of the id, not become a query or another route."""
    return "/jobs/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)


def _not_found(error):
    """Whether an error of the core means "no such job or output" (and nothing else)."""
    return error.code in (7, 17) or error.http_status == 404


@dataclasses.dataclass(frozen=True)
class Core:
    """Calls into the core's own jobs routes through the SDK (they raise OrthancError); never for a
    job's JSON (GET /jobs/{id}, /jobs?expand), which jobs/core.py reads over HTTP."""

    get: object  # uri -> bytes: a job's output
    post: object  # (uri, body) -> bytes
    delete: object  # uri -> None


def _comma_list(get, name):
    if name not in get:
        return None
    values = [v.strip() for v in get[name].split(",")]
    if not all(values):
        raise BadRequest("The %s filter needs one or more comma-separated values" % name)
    return set(values)


def _sniff_mime(data):
    if data.startswith(b"PK\x03\x04"):
        return "application/zip"
    if data[:1] in (b"{", b"["):
        return "application/json"
    return "application/octet-stream"


class JobsApi:
    """Handlers of the jobs routes, bound to the plugin's engine and the core."""

    def __init__(self, engine, core, core_jobs, feed, limits=WaitLimits(), peers=None, loaded=None):
        self._engine, self._core, self._core_jobs, self._feed = engine, core, core_jobs, feed
        # (timeout) -> bool: whether the saved jobs are loaded (at ORTHANC_STARTED, after the HTTP
        # server opened): until then a job id answered 404 although it was accepted before a crash.
        self._loaded = loaded
        # The cluster's other replicas (their core jobs), or None on a single server: see
        # Cluster.peer_core_jobs / peer_core_job / act_on_peer_core_job.
        self._peers = peers
        self._limits = limits
        self._waiting = threading.BoundedSemaphore(limits.max_waiting)

    def _await_loaded(self):
        if self._loaded is not None and not self._loaded(LOAD_WAIT):
            raise JobsLoading("The plugin's saved jobs are still being loaded: try again in a moment")

    @contextlib.contextmanager
    def _wait_slot(self, timeout):
        """The time this request may wait: capped by MaxWaitSeconds, and 0 (answer at once with the
        current state) when LongPollShare of the HTTP threads already wait: others must find a thread."""
        timeout = min(timeout, self._limits.max_seconds)
        if timeout <= 0:
            yield 0.0
            return
        if not self._waiting.acquire(blocking=False):
            yield 0.0
            return
        try:
            yield timeout
        finally:
            self._waiting.release()

    # ---- GET /jobs -------------------------------------------------------------------

    def list(self, request):
        self._await_loaded()
        states = _comma_list(request.get, "state")
        types = _comma_list(request.get, "type")
        if states is not None:
            unknown = sorted(states - set(model.STATES))
            if unknown:
                raise BadRequest("Unknown job state %s (known: %s)" % (", ".join(unknown), ", ".join(model.STATES)))
        expand = "expand" in request.get
        peers = self._peers.peer_core_jobs() if self._peers is not None else []
        if not expand and states is None and types is None:
            return json_response(self._core_jobs.ids() + self._engine.ids() + [j["ID"] for j in peers])
        # A core job whose JSON the core cannot build (it answers 400 for it) is left out: see CoreJobs.all.
        jobs = self._core_jobs.all() + self._engine.all() + peers
        jobs = [job for job in jobs if (states is None or job.get("State") in states)
                and (types is None or job.get("Type") in types)]
        return json_response(jobs if expand else [job["ID"] for job in jobs])

    # ---- /jobs/{id} ------------------------------------------------------------------------

    def _core_job(self, job_id):
        job = self._core_jobs.job(job_id)  # a database outage is not an unknown job: it raises
        if job is None:
            job = self._peer_job(job_id)
        if job is None:
            raise UnknownJob("No job found with this id: %s" % job_id)
        return job

    def _peer_job(self, job_id):
        """A core job of another live replica of the cluster, or None."""
        return self._peers.peer_core_job(job_id) if self._peers is not None else None

    def job(self, request):
        self._await_loaded()
        job_id = request.groups[0]
        found = self._engine.get(job_id)
        return json_response(found if found is not None else self._core_job(job_id))

    def delete(self, request):
        self._await_loaded()
        job_id = request.groups[0]
        if self._engine.get(job_id) is not None:
            self._engine.delete(job_id)
            return json_response({})
        if self._peer_job(job_id) is not None:
            self._peers.act_on_peer_core_job(job_id, "delete")
            return json_response({})
        try:
            self._core.delete(_core_uri(job_id))
        except OrthancError:
            job = self._core_job(job_id)  # 404 when unknown; a database outage keeps its own status
            if job.get("State") in model.FINISHED:
                raise MethodNotAllowed("GET", "This Orthanc cannot delete its jobs") from None
            raise IllegalTransition("Only a finished job can be deleted; this one is %s" % job.get("State")) from None
        return json_response({})

    # ---- /jobs/{id}/{name}: actions, wait, outputs ------------------------------------------

    def post(self, request):
        self._await_loaded()
        job_id, action = request.groups
        if action not in model.ACTIONS:
            raise BadRequest("Unknown job action %r (known: %s)" % (action, ", ".join(model.ACTIONS)))
        if self._engine.get(job_id) is not None:
            self._engine.act(job_id, action)
        elif self._peer_job(job_id) is not None:
            self._peers.act_on_peer_core_job(job_id, action)  # carried out by the replica that runs it
        else:
            try:
                self._core.post(_core_uri(job_id, action), b"")
            except OrthancError as error:
                if error.http_status >= 500:
                    raise
                # The core answers 400 both for an unknown job and for an illegal move.
                raise BadRequest("Cannot %s job %s (unknown, or not allowed in its state)" % (action, job_id),
                                 code=error.code if error.http_status == 400 else 8) from None
        return json_response({})

    def get(self, request):
        self._await_loaded()
        job_id, name = request.groups
        if name == "wait":
            return self._wait(job_id, request.get)
        if self._engine.get(job_id) is not None:
            found = self._engine.output(job_id, name)
            if found is None:
                raise UnknownJob("Job %s has no output named %s" % (job_id, name))
            return Response(found[0], found[1])
        try:
            data = self._core.get(_core_uri(job_id, name))
        except OrthancError as error:
            if not _not_found(error) and error.http_status != 400:
                raise
            raise UnknownJob("No output %s for job %s" % (name, job_id)) from None
        return Response(data, _sniff_mime(data))

    def delete_output(self, request):
        self._await_loaded()
        job_id, name = request.groups
        if self._engine.get(job_id) is not None:
            if not self._engine.delete_output(job_id, name):
                raise UnknownJob("Job %s has no output named %s" % (job_id, name))
        else:
            self._core.delete(_core_uri(job_id, name))
        return json_response({})

    def changes(self, request):
        """GET {Root}/jobs/changes?since=N&timeout=S: job changes after N, waiting up to S s for one."""
        self._await_loaded()
        since = query_number(request.get, "since", 0, int, 0, 2 ** 63)
        timeout = query_number(request.get, "timeout", 0.0, float, 0, MAX_WAIT)
        with self._wait_slot(timeout) as timeout:
            return json_response(self._feed.since(since, timeout))

    def _wait(self, job_id, get):
        timeout = query_number(get, "timeout", 30.0, float, 0, MAX_WAIT)
        with self._wait_slot(timeout) as timeout:
            return self._wait_for(job_id, timeout)

    def _wait_for(self, job_id, timeout):
        if self._engine.get(job_id) is not None:
            return json_response(self._engine.wait(job_id, timeout))
        deadline = time.monotonic() + timeout
        seq = self._feed.last()
        while True:
            job = self._core_job(job_id)
            remaining = deadline - time.monotonic()
            if job.get("State") in model.FINISHED or remaining <= 0:
                return json_response(job)
            # The feed moves on core job events and on its periodic look at the core.
            seq = self._feed.wait_after(seq, remaining)

    def routes(self, own):
        """(pattern suffix, handlers) of the jobs routes under a root.

        `own`: the plugin's root, serving every id, and what the core lacks (/jobs/changes, registered
        first: it would match /jobs/{id}). At the core's paths: /jobs, /jobs/{id}/wait for any id (the
        core has no such route), and /jobs/{id}... only for the plugin's ids, so that a core job's id
        reaches the core's own handlers (answered by Orthanc's HTTP server, whatever the core throws).
        """
        job = GROUP if own else "(%s)" % model.PLUGIN_JOB_ID
        extra = [("/jobs/changes", {"GET": self.changes})] if own else [("/jobs/%s/(wait)" % GROUP, {"GET": self.get})]
        return extra + [
            ("/jobs", {"GET": self.list}),
            ("/jobs/%s" % job, {"GET": self.job, "DELETE": self.delete}),
            ("/jobs/%s/%s" % (job, GROUP), {"GET": self.get, "POST": self.post, "DELETE": self.delete_output}),
        ]
