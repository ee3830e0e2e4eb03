"""The monitoring API: GET/DELETE /jobs..., the four actions, outputs, wait; over core and plugin jobs.

Whatever concerns a core job is forwarded to the core; plugin jobs answer with the
same JSON shapes. Beyond the core: ?state= and ?type= filters, and /jobs/{id}/wait.
"""
import dataclasses
import json
import threading
import time

from ..errors import BadRequest, OrthancError, UnknownJob
from ..web import Response, json_response
from . import model

ACTIONS = ("cancel", "pause", "resume", "resubmit")
MAX_WAIT = 3600.0
_CORE_POLL = 0.5  # the core tells nothing when a pending job is cancelled: look this often


@dataclasses.dataclass(frozen=True)
class Core:
    """Calls into the core's own jobs routes (they raise OrthancError)."""

    get: object  # uri -> bytes
    post: object  # (uri, body) -> bytes
    delete: object  # uri -> None


class CoreJobEvents:
    """Wakes waiters when Orthanc reports a core job change (JOB_SUCCESS, JOB_FAILURE...)."""

    def __init__(self):
        self._condition = threading.Condition()

    def changed(self, _job_id=None):
        with self._condition:
            self._condition.notify_all()

    def wait(self, seconds):
        with self._condition:
            self._condition.wait(seconds)


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

    def __init__(self, engine, core, events):
        self._engine, self._core, self._events = engine, core, events

    # ---- GET /jobs -------------------------------------------------------------------

    def list(self, request):
        states = _comma_list(request.get, "state")
        types = _comma_list(request.get, "type")
        if states is not None:
            unknown = sorted(states - set(model.STATES))
            if unknown:
                raise BadRequest("Unknown job state %s (known: %s)" % (", ".join(unknown), ", ".join(model.STATES)))
        expand = "expand" in request.get
        if not expand and states is None and types is None:
            return json_response(json.loads(self._core.get("/jobs")) + self._engine.ids())
        jobs = json.loads(self._core.get("/jobs?expand")) + self._engine.all()
        jobs = [job for job in jobs if (states is None or job.get("State") in states)
                and (types is None or job.get("Type") in types)]
        return json_response(jobs if expand else [job["ID"] for job in jobs])

    # ---- /jobs/{id} ------------------------------------------------------------------------

    def _core_job(self, job_id):
        try:
            return json.loads(self._core.get("/jobs/%s" % job_id))
        except OrthancError:
            raise UnknownJob("No job found with this id: %s" % job_id) from None

    def job(self, request):
        job_id = request.groups[0]
        found = self._engine.get(job_id)
        return json_response(found if found is not None else self._core_job(job_id))

    def delete(self, request):
        job_id = request.groups[0]
        if self._engine.get(job_id) is not None:
            self._engine.delete(job_id)
        else:
            self._core.delete("/jobs/%s" % job_id)
        return json_response({})

    # ---- /jobs/{id}/{name}: actions, wait, outputs ------------------------------------------

    def post(self, request):
        job_id, action = request.groups
        if action not in ACTIONS:
            raise BadRequest("Unknown job action %r (known: %s)" % (action, ", ".join(ACTIONS)))
        if self._engine.get(job_id) is not None:
            self._engine.act(job_id, action)
        else:
            try:
                self._core.post("/jobs/%s/%s" % (job_id, action), b"")
            except OrthancError as error:
                # The core answers 400 both for an unknown job and for an illegal move.
                raise BadRequest("Cannot %s job %s (unknown, or not allowed in its state)" % (action, job_id),
                                 code=error.code if error.http_status == 400 else 8) from None
        return json_response({})

    def get(self, request):
        job_id, name = request.groups
        if name == "wait":
            return self._wait(job_id, request.get)
        if self._engine.get(job_id) is not None:
            found = self._engine.output(job_id, name)
            if found is None:
                raise UnknownJob("Job %s has no output named %s" % (job_id, name))
            return Response(found[0], found[1])
        try:
            data = self._core.get("/jobs/%s/%s" % (job_id, name))
        except OrthancError:
            raise UnknownJob("No output %s for job %s" % (name, job_id)) from None
        return Response(data, _sniff_mime(data))

    def delete_output(self, request):
        job_id, name = request.groups
        if self._engine.get(job_id) is not None:
            if not self._engine.delete_output(job_id, name):
                raise UnknownJob("Job %s has no output named %s" % (job_id, name))
        else:
            self._core.delete("/jobs/%s/%s" % (job_id, name))
        return json_response({})

    def _wait(self, job_id, get):
        try:
            timeout = float(get.get("timeout", "30"))
        except ValueError:
            raise BadRequest("timeout must be a number of seconds, not %r" % get.get("timeout")) from None
        if not 0 <= timeout <= MAX_WAIT:
            raise BadRequest("timeout must be between 0 and %d seconds" % MAX_WAIT)
        if self._engine.get(job_id) is not None:
            return json_response(self._engine.wait(job_id, timeout))
        deadline = time.monotonic() + timeout
        while True:
            job = self._core_job(job_id)
            remaining = deadline - time.monotonic()
            if job.get("State") in model.FINISHED or remaining <= 0:
                return json_response(job)
            self._events.wait(min(remaining, _CORE_POLL))

    def routes(self):
        """(pattern suffix, handlers) of every jobs route, relative to a root ("" or {Root})."""
        return [
            ("/jobs", {"GET": self.list}),
            ("/jobs/([^/]+)", {"GET": self.job, "DELETE": self.delete}),
            ("/jobs/([^/]+)/([^/]+)", {"GET": self.get, "POST": self.post, "DELETE": self.delete_output}),
        ]
