"""The monitoring API: GET/DELETE /jobs..., the four actions, outputs, wait; over core and plugin jobs.

Whatever concerns a core job goes to the core: its JSON through Orthanc's HTTP server (jobs/core.py),
actions, outputs and deletions through the SDK (none builds a job's JSON); plugin jobs answer with the
same JSON shapes. Beyond the core: ?state= and ?type= filters, and /jobs/{id}/wait. At the core's
paths the plugin serves /jobs, /jobs/{id}/wait, and /jobs/{id}... of its own ids only.

Access (access.py): at the core's paths the site's filters already judged the request's own path. Under
{Root}, each route stands for the core path of the same suffix, for every job, core or plugin: a core job's
JSON, output, action or deletion is done at the core's path as the requester (`forward`); anything else is
checked there first (`check`: the lists and the feed stand for GET /jobs, a wait for GET /jobs/{id}).
"""
import contextlib
import dataclasses
import json
import threading
import time
import urllib.parse

from ..access import OutputTooLarge
from ..errors import (BadRequest, IllegalTransition, JobsLoading, MethodNotAllowed, OrthancError, OutputsBusy,
                      UnknownJob)
from ..web import GROUP, Redirect, Response, json_response, query_number
from . import model

OUTPUT_WAIT = 2.0  # seconds a request for a core job's output waits for its turn before its 503
# No plugin job type produces an output yet (README, Jobs): they come back, stored where every replica of a
# cluster can serve them, with the first that does.
_NO_OUTPUT = "Job %s has no output named %s (the plugin's jobs have no outputs)"
LOAD_WAIT = 10.0  # seconds a request waits for the saved jobs to be loaded at start
MAX_WAIT = 3600.0  # the largest timeout accepted; AdvancedRest.MaxWaitSeconds caps how long it waits


@dataclasses.dataclass(frozen=True)
class WaitLimits:
    """How long one long-poll waits at most, and how many may wait at once (HTTP threads they hold)."""

    max_seconds: float = 60.0
    max_waiting: int = 10


@dataclasses.dataclass(frozen=True)
class OutputLimits:
    """Outputs of core jobs served under {Root} (an archive may take gigabytes): the largest one copied
    (larger ones are redirected to the core's own path, which streams them), and how many at once."""

    max_bytes: int = 256 * 1024 * 1024
    max_concurrent: int = 2


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


# The core's code for an error answer without a body (a refused job action is a bare 400), as its SDK reports it.
_CODE_OF_STATUS = {400: 8, 404: 7}


def _raise_answer(status, body, what):
    """Raise the core's error answer `status` (its OrthancStatus kept) as an OrthancError."""
    try:
        document = json.loads(body)
        code = document.get("OrthancStatus") if isinstance(document, dict) else None
    except ValueError:
        code = None
    if not isinstance(code, int) or isinstance(code, bool):
        code = _CODE_OF_STATUS.get(status, -1)
    raise OrthancError("Orthanc answered HTTP %d to %s" % (status, what), code=code, status=status)


class _AsRequester:
    """The Core's calls, done at the core's paths as the requester (access.Access.forward): the site's rules
    decide, and refuse with AccessDenied."""

    def __init__(self, access, request):
        self._access, self._request = access, request

    def _call(self, method, uri, body=None, limit=None):
        status, data, allow = self._access.forward(self._request, method, uri, body, limit)
        if status == MethodNotAllowed.status:  # the core's route lacks it (DELETE on 1.10): 405 with its Allow
            raise MethodNotAllowed(allow or "GET", "Orthanc answered 405 to %s %s" % (method, uri))
        if not 200 <= status < 300:
            _raise_answer(status, data, "%s %s" % (method, uri))
        return data

    def get(self, uri, limit=None):
        return self._call("GET", uri, limit=limit)

    def post(self, uri, body):
        return self._call("POST", uri, body)

    def delete(self, uri):
        self._call("DELETE", uri)

    def read(self, path):
        return self._access.forward(self._request, "GET", path)[:2]


def _comma_list(get, name):
    if name not in get:
        return None
    values = [v.strip() for v in get[name].split(",")]
    if not all(values):
        raise BadRequest("The %s filter needs one or more comma-separated values" % name)
    return set(values)


def _relative(uri, core_path):
    """`core_path` as a reference relative to `uri`: right behind a proxy that serves Orthanc under a prefix."""
    return "../" * (uri.count("/") - 1) + core_path.lstrip("/")


def _sniff_mime(data):
    if data.startswith(b"PK\x03\x04"):
        return "application/zip"
    if data[:1] in (b"{", b"["):
        return "application/json"
    return "application/octet-stream"


class JobsApi:
    """Handlers of the jobs routes, bound to the plugin's jobs (interfaces.Jobs) and the core."""

    def __init__(self, jobs, core, core_jobs, feed, limits=WaitLimits(), peers=None, loaded=None, access=None,
                 outputs=OutputLimits(), retries=None):
        self._jobs, self._core, self._core_jobs, self._feed = jobs, core, core_jobs, feed
        # retries.core_jobs.CoreRetries (None: no AdvancedRest.Retries): it holds the core's jobs waiting in
        # Retry, whose actions (under {Root}) are its own, and which cannot be deleted until they end.
        self._retries = retries
        # access.Access (None: Orthanc's HTTP server is off, every request came through the SDK, from Lua
        # or a plugin, which may call the core's paths anyway: nothing to ask).
        self._access = access
        self._outputs = outputs
        self._output_turns = threading.BoundedSemaphore(outputs.max_concurrent)
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

    def _as(self, request, own, job_id, method, path):
        """Where a call about a core job goes: under {Root}, to the core's path as the requester; at the core's
        paths (the site's filters judged this very path), through the SDK. An id of the plugin's form, no job
        of the core's, is checked at `method path` and goes through the SDK: forwarded, it would reach the
        plugin's own route there."""
        if not own or self._access is None:
            return self._core
        if model.is_plugin_job_id(job_id):
            self._access.check(request, method, path)
            return self._core
        return _AsRequester(self._access, request)

    def _check(self, request, own, method, path):
        """Under {Root}: nothing if the site's rules allow the requester `method path`; raises AccessDenied."""
        if own and self._access is not None:
            self._access.check(request, method, path)

    # ---- GET /jobs -------------------------------------------------------------------

    def list(self, request, own=False):
        self._await_loaded()
        self._check(request, own, "GET", "/jobs")
        states = _comma_list(request.get, "state")
        types = _comma_list(request.get, "type")
        if states is not None:
            unknown = sorted(states - set(model.STATES))
            if unknown:
                raise BadRequest("Unknown job state %s (known: %s)" % (", ".join(unknown), ", ".join(model.STATES)))
        expand = "expand" in request.get
        peers = self._peers.peer_core_jobs() if self._peers is not None else []
        if not expand and states is None and types is None:
            return json_response(self._core_jobs.ids() + self._jobs.ids() + [j["ID"] for j in peers])
        # A core job whose JSON the core cannot build (it answers 400 for it) is left out: see CoreJobs.all.
        jobs = self._core_jobs.all() + self._jobs.all() + peers
        jobs = [job for job in jobs if (states is None or job.get("State") in states)
                and (types is None or job.get("Type") in types)]
        return json_response(jobs if expand else [job["ID"] for job in jobs])

    # ---- /jobs/{id} ------------------------------------------------------------------------

    def _core_job(self, job_id, core=None):
        """The JSON of a core job of this server (read as the requester when `core` is an _AsRequester) or of a
        peer replica's; raises UnknownJob."""
        job = self._core_jobs.job(job_id, getattr(core, "read", None))  # a database outage raises
        if job is None:  # the core answered 404, past its filters: the requester may ask for GET /jobs/{id}
            job = self._peer_job(job_id)
        if job is None:
            raise UnknownJob("No job found with this id: %s" % job_id)
        return job

    def _peer_job(self, job_id):
        """A core job of another live replica of the cluster, or None."""
        return self._peers.peer_core_job(job_id) if self._peers is not None else None

    def job(self, request, own=False):
        self._await_loaded()
        job_id = request.groups[0]
        found = self._jobs.get(job_id)
        if found is not None:
            self._check(request, own, "GET", _core_uri(job_id))
            return json_response(found)
        return json_response(self._core_job(job_id, self._as(request, own, job_id, "GET", _core_uri(job_id))))

    def delete(self, request, own=False):
        self._await_loaded()
        job_id = request.groups[0]
        if self._jobs.get(job_id) is not None:
            self._check(request, own, "DELETE", _core_uri(job_id))
            self._jobs.delete(job_id)
            return json_response({})
        if self._peer_job(job_id) is not None:
            self._check(request, own, "DELETE", _core_uri(job_id))
            self._peers.act_on_peer_core_job(job_id, "delete")
            return json_response({})
        if self._retries is not None and self._retries.holds(job_id):
            self._check(request, own, "GET", _core_uri(job_id))  # never the DELETE itself: the core would do it
            raise IllegalTransition("Only a finished job can be deleted; this one is %s (automatic retries: "
                                    "cancel it first)" % model.State.RETRY)
        core = self._as(request, own, job_id, "DELETE", _core_uri(job_id))
        try:
            core.delete(_core_uri(job_id))
        except (OrthancError, MethodNotAllowed):  # the core's 405 (1.10: no DELETE) too, answered as below
            job = self._core_job(job_id, core)  # 404 when unknown; a database outage keeps its own status
            if job.get("State") in model.FINISHED:
                raise MethodNotAllowed("GET", "This Orthanc cannot delete its jobs") from None
            raise IllegalTransition("Only a finished job can be deleted; this one is %s" % job.get("State")) from None
        return json_response({})

    # ---- /jobs/{id}/{name}: actions, wait, outputs ------------------------------------------

    def post(self, request, own=False):
        self._await_loaded()
        job_id, action = request.groups
        if action not in model.ACTIONS:
            raise BadRequest("Unknown job action %r (known: %s)" % (action, ", ".join(model.ACTIONS)))
        action = model.Action(action)
        if self._jobs.get(job_id) is not None:
            self._check(request, own, "POST", _core_uri(job_id, action))
            self._jobs.act(job_id, action)
        elif self._peer_job(job_id) is not None:
            self._check(request, own, "POST", _core_uri(job_id, action))
            self._peers.act_on_peer_core_job(job_id, action)  # carried out by the replica that runs it
        elif not self._retried(request, own, job_id, action):
            try:
                self._as(request, own, job_id, "POST", _core_uri(job_id, action)).post(_core_uri(job_id, action), b"")
            except OrthancError as error:
                if error.http_status >= 500:
                    raise
                # The core answers 400 both for an unknown job and for an illegal move.
                raise BadRequest("Cannot %s job %s (unknown, or not allowed in its state)" % (action, job_id),
                                 code=error.code if error.http_status == 400 else 8) from None
        return json_response({})

    def _retried(self, request, own, job_id, action):
        """Whether `action` was a core job's that waits in Retry (or is paused there), then carried out.

        The action goes first to the core's path as the requester, so that the site's rules decide as for any
        core job: on a job that the core shows failed, cancel and pause change nothing there, resume is
        refused (400), resubmit runs it now (the retries see it running at their next look). Then the retries
        carry out what the action means for them (CoreRetries.act)."""
        if self._retries is None or not self._retries.holds(job_id):
            return False
        uri = _core_uri(job_id, action)
        core = self._as(request, own, job_id, "POST", uri)
        try:
            core.post(uri, b"")
        except OrthancError as error:
            if error.http_status >= 500 or action != model.Action.RESUME:
                raise
        if action != model.Action.RESUBMIT and not self._retries.act(job_id, action):
            core.post(uri, b"")  # its retry began meanwhile: the core's action applies to that run
        return True

    def get(self, request, own=False):
        self._await_loaded()
        job_id, name = request.groups
        if name == "wait":
            # A route of the plugin's, at the core's paths too: it shows what GET /jobs/{id} shows.
            if self._access is not None:
                self._access.check(request, "GET", _core_uri(job_id))
            return self._wait(job_id, request.get)
        if self._jobs.get(job_id) is not None:
            self._check(request, own, "GET", _core_uri(job_id, name))
            raise UnknownJob(_NO_OUTPUT % (job_id, name))
        core = self._as(request, own, job_id, "GET", _core_uri(job_id, name))
        try:
            with self._output_turn():
                if core is self._core:
                    data = core.get(_core_uri(job_id, name))
                else:
                    data = core.get(_core_uri(job_id, name), limit=self._outputs.max_bytes)
        except OutputTooLarge:
            # Copied whole here, it would be held twice; the core's own path streams it, under its own rules.
            return Redirect(_relative(request.uri, _core_uri(job_id, name)))
        except OrthancError as error:
            if not _not_found(error) and error.http_status != 400:
                raise
            raise UnknownJob("No output %s for job %s" % (name, job_id)) from None
        return Response(data, _sniff_mime(data))

    @contextlib.contextmanager
    def _output_turn(self):
        if not self._output_turns.acquire(timeout=OUTPUT_WAIT):
            raise OutputsBusy("%d outputs of core jobs are already being served (AdvancedRest.MaxConcurrentOutputs)"
                              % self._outputs.max_concurrent)
        try:
            yield
        finally:
            self._output_turns.release()

    def delete_output(self, request, own=False):
        self._await_loaded()
        job_id, name = request.groups
        if self._jobs.get(job_id) is not None:
            self._check(request, own, "DELETE", _core_uri(job_id, name))
            raise UnknownJob(_NO_OUTPUT % (job_id, name))
        else:
            self._as(request, own, job_id, "DELETE", _core_uri(job_id, name)).delete(_core_uri(job_id, name))
        return json_response({})

    def changes(self, request, own=True):
        """GET {Root}/jobs/changes?since=N&timeout=S: job changes after N, waiting up to S s for one."""
        self._await_loaded()
        self._check(request, own, "GET", "/jobs")
        since = query_number(request.get, "since", 0, int, 0, 2 ** 63)
        timeout = query_number(request.get, "timeout", 0.0, float, 0, MAX_WAIT)
        with self._wait_slot(timeout) as timeout:
            return json_response(self._feed.since(since, timeout))

    def _wait(self, job_id, get):
        timeout = query_number(get, "timeout", 30.0, float, 0, MAX_WAIT)
        with self._wait_slot(timeout) as timeout:
            return self._wait_for(job_id, timeout)

    def _wait_for(self, job_id, timeout):
        if self._jobs.get(job_id) is not None:
            return json_response(self._jobs.wait(job_id, timeout))
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

        def at(handler):
            return lambda request: handler(request, own)

        extra = [("/jobs/changes", {"GET": self.changes})] if own else [("/jobs/%s/(wait)" % GROUP, {"GET": at(self.get)})]
        return extra + [
            ("/jobs", {"GET": at(self.list)}),
            ("/jobs/%s" % job, {"GET": at(self.job), "DELETE": at(self.delete)}),
            ("/jobs/%s/%s" % (job, GROUP), {"GET": at(self.get), "POST": at(self.post), "DELETE": at(self.delete_output)}),
        ]
