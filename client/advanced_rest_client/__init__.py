"""A small client of the advanced-rest plugin's REST API, and the `advanced-rest` command.

Needs only `requests`:

    from advanced_rest_client import Client
    orthanc = Client("http://localhost:8042", "user", "password")
    job = orthanc.create_dicom({"Tags": {"PatientName": "A"}, "Content": uri}, asynchronous=True)
    print(orthanc.wait_for_job(job["ID"], timeout=600)["State"])
"""
import sys
import time

import requests

__version__ = "1.0.0"
__all__ = ["Client", "JobTimeout", "FINISHED", "monitor", "wait_for_job"]

FINISHED = ("Success", "Failure")
_LONG_POLL = 30.0  # seconds per request: below common proxy time-outs
_BACK_OFF = 1.0  # seconds before asking again when a wait was answered at once


class JobTimeout(TimeoutError):
    """The job did not finish in time; `job` holds its last known JSON."""

    def __init__(self, job):
        super().__init__("job %s is still %s" % (job.get("ID"), job.get("State")))
        self.job = job


class Client:
    """An Orthanc with the advanced-rest plugin, over HTTP."""

    def __init__(self, url="http://localhost:8042", username=None, password=None, root="/advanced-rest",
                 session=None):
        self.url, self.root = url.rstrip("/"), root
        self.session = session or requests.Session()
        if username is not None:
            self.session.auth = (username, password or "")

    def _call(self, method, path, **kwargs):
        answer = self.session.request(method, self.url + path, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def create_dicom(self, body, asynchronous=False, priority=0):
        """POST /tools/create-dicom; with `asynchronous`, the job's {ID, Path}."""
        if asynchronous:
            body = dict(body, Asynchronous=True, Priority=priority)
        return self._call("POST", self.root + "/tools/create-dicom", json=body)

    def job(self, job_id):
        """GET /jobs/{id} (core or plugin job)."""
        return self._call("GET", self.root + "/jobs/%s" % job_id)

    def jobs(self, states=None, types=None, expand=False):
        """GET /jobs with the plugin's filters: ids, or whole jobs with `expand`."""
        params = {}
        if states:
            params["state"] = ",".join(states)
        if types:
            params["type"] = ",".join(types)
        if expand:
            params["expand"] = ""
        return self._call("GET", self.root + "/jobs", params=params)

    def act(self, job_id, action):
        """POST /jobs/{id}/{cancel|pause|resume|resubmit}."""
        return self._call("POST", self.root + "/jobs/%s/%s" % (job_id, action), data=b"")

    def changes(self, since=0, timeout=0.0):
        """GET {Root}/jobs/changes: {"Changes", "Last", "Done"} after `since`, waiting up to `timeout` s."""
        return self._call("GET", self.root + "/jobs/changes", params={"since": since, "timeout": timeout},
                          timeout=timeout + 30)

    def wait_for_job(self, job_id, timeout=None):
        """The job's JSON once it is finished (the server holds each request: no polling).

        Raises:
            JobTimeout: when `timeout` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            chunk = _LONG_POLL if deadline is None else max(0.0, min(_LONG_POLL, deadline - time.monotonic()))
            began = time.monotonic()
            job = self._call("GET", self.root + "/jobs/%s/wait" % job_id, params={"timeout": chunk},
                             timeout=chunk + 30)
            if job["State"] in FINISHED:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(job)
            if time.monotonic() - began < min(_BACK_OFF, chunk):
                # Answered at once: the server's long-polls are all taken (LongPollShare). Back off
                # rather than ask again in a loop.
                time.sleep(_BACK_OFF if deadline is None else max(0.0, min(_BACK_OFF, deadline - time.monotonic())))


def wait_for_job(url, job_id, timeout=None, username=None, password=None):
    """Shortcut: Client(url, username, password).wait_for_job(job_id, timeout)."""
    return Client(url, username, password).wait_for_job(job_id, timeout)


def _bar(job, width=30):
    done = int(width * job.get("Progress", 0) / 100)
    return "[%s%s] %3d%% %-8s %s %s" % ("#" * done, "." * (width - done), job.get("Progress", 0),
                                        job.get("State", "?"), job.get("Type", ""), job.get("ID", ""))


def monitor(client, job_id, timeout=None, out=None):
    """Show a progress bar on `out` (standard output) until the job ends; its final JSON.

    Raises:
        JobTimeout: when `timeout` seconds pass first.
    """
    out = out or sys.stdout
    deadline = None if timeout is None else time.monotonic() + timeout
    job = client.job(job_id)
    since = client.changes()["Last"]
    out.write(_bar(job))
    out.flush()
    while job["State"] not in FINISHED:
        if deadline is not None and time.monotonic() >= deadline:
            raise JobTimeout(job)
        wait = 5.0 if deadline is None else max(0.0, min(5.0, deadline - time.monotonic()))
        began = time.monotonic()
        answer = client.changes(since, wait)
        since = answer["Last"]
        if not answer["Changes"] and time.monotonic() - began < min(_BACK_OFF, wait):
            time.sleep(_BACK_OFF)  # answered at once: the server's long-polls are all taken
        if any(change["ID"] == job_id for change in answer["Changes"]) or not answer["Changes"]:
            job = client.job(job_id)
            out.write("\r" + _bar(job))
            out.flush()
    out.write("\n")
    if job["State"] == "Failure":
        out.write("%s: %s %s\n" % (job["ErrorCode"], job["ErrorDescription"], job.get("ErrorDetails", "")))
    return job
