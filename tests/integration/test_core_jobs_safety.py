"""Core jobs with nothing to do never take Orthanc down with the plugin loaded (issue 15).

An empty archive job reports a progress of 0/0 while it runs, and the core throws a non-Orthanc
exception when it builds that job's JSON. Through Orthanc's HTTP server that is an error answer;
the plugin must never reach it through the SDK. Each test floods one core job type with empty
input (where the core accepts it) while other clients read every jobs route of the plugin.
"""
import json
import threading
import time
import uuid

import requests

from servers import REQUEST_TIMEOUT, free_port

ROOT = "/advanced-rest"
FLOOD = 200  # jobs submitted per type
HISTORY = 2000  # JobsHistorySize: every job submitted stays listed


class _Client:
    """GETs on one server with a session of its own (a requests.Session is not for several threads)."""

    def __init__(self, server):
        self.url, self.session = server.url, requests.Session()
        self.session.auth = server.session.auth

    def get(self, path, **kw):
        kw.setdefault("timeout", REQUEST_TIMEOUT)
        return self.session.get(self.url + path, **kw)


class Readers:
    """Threads reading the jobs routes in a loop; every answer's status is recorded per route."""

    def __init__(self, server):
        self.server = server
        self._clients = threading.local()
        self.stop = threading.Event()
        self.statuses = {}  # route -> {status: count}
        self.failures = []  # (route, exception text): a connection refused or reset
        self.latest = []  # job ids seen, newest last
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, args=(reader,), daemon=True)
                        for reader in (self._expand, self._list, self._one, self._wait, self._changes, self._filtered)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _record(self, route, answer):
        with self._lock:
            counts = self.statuses.setdefault(route, {})
            counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
        return answer

    @property
    def client(self):
        if not hasattr(self._clients, "client"):
            self._clients.client = _Client(self.server)
        return self._clients.client

    def _loop(self, reader):
        while not self.stop.is_set():
            try:
                reader()
            except Exception as exc:  # the server is gone, or answered something unreadable
                self.failures.append((reader.__name__, repr(exc)))
                time.sleep(0.2)

    def _pick(self):
        with self._lock:
            return self.latest[-1] if self.latest else None

    def _expand(self):
        answer = self._record("/jobs?expand", self.client.get("/jobs", params={"expand": ""}))
        if answer.status_code == 200:
            ids = [job["ID"] for job in answer.json()]
            with self._lock:
                self.latest = ids[-20:]

    def _filtered(self):
        self._record(ROOT + "/jobs?expand&state", self.client.get(
            ROOT + "/jobs", params={"expand": "", "state": "Running,Pending,Success"}))

    def _list(self):
        self._record("/jobs", self.client.get("/jobs"))

    def _one(self):
        job_id = self._pick()
        if job_id is not None:
            self._record("/jobs/{id}", self.client.get("/jobs/%s" % job_id))
        else:
            time.sleep(0.01)

    def _wait(self):
        job_id = self._pick()
        if job_id is not None:
            self._record("/jobs/{id}/wait", self.client.get("/jobs/%s/wait" % job_id, params={"timeout": 1}))
        else:
            time.sleep(0.01)

    def _changes(self):
        self._record(ROOT + "/jobs/changes",
                     self.client.get(ROOT + "/jobs/changes", params={"since": 0, "timeout": 0.2}))


def _one_study(server):
    """A stored study (for the kinds of job that act on one); its id."""
    answer = server.post("/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "Empty^Jobs"}}))
    assert answer.status_code == 200, answer.text
    return answer.json()["ParentStudy"]


# (job type, how to submit one with nothing to do) -> (method, uri, body)
def _submissions(server, study):
    yield "Archive", ("/tools/create-archive", [])  # as in the issue: synchronous, answered with an empty zip
    yield "Archive", ("/tools/create-archive", {"Resources": [], "Asynchronous": True})
    yield "Media", ("/tools/create-media", {"Resources": [], "Asynchronous": True})
    yield "Media", ("/tools/create-media-extended", {"Resources": [], "Asynchronous": True})
    yield "ResourceModification", ("/tools/bulk-modify", {"Resources": [], "Replace": {"PatientName": "X"},
                                                          "Force": True, "Asynchronous": True})
    yield "ResourceModification", ("/tools/bulk-anonymize", {"Resources": [], "Asynchronous": True})
    yield "MergeStudy", ("/studies/%s/merge" % study, {"Resources": [], "Asynchronous": True})
    yield "SplitStudy", ("/studies/%s/split" % study, {"Series": [], "Instances": [], "Asynchronous": True})
    yield "DicomModalityStore", ("/modalities/self/store", {"Resources": [], "Asynchronous": True})
    yield "OrthancPeerStore", ("/peers/self/store", {"Resources": [], "Asynchronous": True})


def _accepted(server, study):
    """The submissions this Orthanc accepts (200 once): a core without a route, or refusing empty
    input, says so and that kind is not flooded."""
    accepted, refused = [], []
    for job_type, (uri, body) in _submissions(server, study):
        answer = server.post(uri, data=json.dumps(body))
        (accepted if answer.status_code == 200 else refused).append((job_type, uri, body, answer.status_code))
    return accepted, refused


def _start(orthanc_factory):
    """A plugin server whose modality "self" and peer "self" are itself: exports of nothing have
    somewhere to go."""
    server = orthanc_factory(config={"JobsHistorySize": HISTORY}, start=False)
    server.http_port, server.dicom_port = free_port(), free_port()  # kept by start()
    server.extra_config.update({
        "DicomAet": "SELF",
        "DicomModalities": {"self": ["SELF", "127.0.0.1", server.dicom_port]},
        "OrthancPeers": {"self": ["http://127.0.0.1:%d/" % server.http_port]},
    })
    return server.start()


def _flood(server, uri, body, count):
    ids = []
    for _ in range(count):
        answer = server.post(uri, data=json.dumps(body))
        assert answer.status_code == 200, (uri, answer.status_code, answer.text[:300])
        if isinstance(body, dict) and body.get("Asynchronous"):
            ids.append(answer.json()["ID"])
        assert server.running(), "Orthanc died after %d requests of %s (exit %s)" % (
            len(ids), uri, server.process.poll())
    return ids


def test_empty_core_jobs_flooded_while_every_jobs_route_is_read(orthanc_factory):
    server = _start(orthanc_factory)
    study = _one_study(server)
    accepted, refused = _accepted(server, study)
    kinds = {job_type for job_type, *_ in accepted}
    assert {"Archive", "Media"} <= kinds, (accepted, refused)
    print("flooded:", sorted({(t, u) for t, u, _b, _s in accepted}), "refused by this core:", refused)

    submitted = []
    with Readers(server) as readers:
        for _job_type, uri, body, _status in accepted:
            submitted += _flood(server, uri, body, FLOOD if uri == "/tools/create-archive" else FLOOD // 4)
    assert server.running(), "Orthanc died (exit %s)" % server.process.poll()
    assert not readers.failures, readers.failures[:5]
    for route in ("/jobs?expand", ROOT + "/jobs?expand&state", "/jobs", "/jobs/{id}", "/jobs/{id}/wait",
                  ROOT + "/jobs/changes"):
        counts = readers.statuses.get(route, {})
        assert counts and set(counts) == {200}, (route, counts)

    # Every job with nothing to do is listed, waited for and counted like any other.
    for job_id in submitted[-40:]:
        answer = server.get("/jobs/%s/wait" % job_id, params={"timeout": 30}, timeout=60)
        assert answer.status_code == 200 and answer.json()["State"] == "Success", answer.text[:300]
    listed = {job["ID"]: job for job in server.get("/jobs", params={"expand": ""}).json()}
    assert set(submitted) <= set(listed)
    by_type = {}
    for job in listed.values():
        if job["State"] == "Success":
            by_type[job["Type"]] = by_type.get(job["Type"], 0) + 1
    time.sleep(1.5)  # the plugin looks at the core's jobs every second
    counted = {}
    for line in server.get("/tools/metrics-prometheus").text.splitlines():
        if line.startswith("orthanc_jobs{") and 'state="Success"' in line:
            job_type = line.split('type="', 1)[1].split('"', 1)[0]
            counted[job_type] = float(line.rsplit(" ", 1)[1])
    assert {t: counted.get(t) for t in by_type} == {t: float(n) for t, n in by_type.items()}
    feed = server.get(ROOT + "/jobs/changes", params={"since": 0}).json()
    assert {change["ID"] for change in feed["Changes"]} >= set(submitted[-5:])


# ---- whose handler answers which id ------------------------------------------------------------

def test_plugin_and_core_jobs_answer_the_cores_shape_at_the_cores_paths(plugin):
    study = _one_study(plugin)
    core_id = plugin.post("/studies/%s/archive" % study, data=json.dumps({"Asynchronous": True})).json()["ID"]
    plugin_id = plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Asynchronous": True})).json()["ID"]
    assert uuid.UUID(plugin_id).version == 8 and uuid.UUID(core_id).version == 4  # the plugin's ids have a form
    jobs = {}
    for job_id in (core_id, plugin_id):
        waited = plugin.get("/jobs/%s/wait" % job_id, params={"timeout": 30}, timeout=60)
        assert waited.status_code == 200 and waited.json()["State"] == "Success", waited.text[:300]
        answer = plugin.get("/jobs/%s" % job_id)
        assert answer.status_code == 200 and answer.json()["ID"] == job_id, answer.text[:300]
        jobs[job_id] = answer.json()
        assert plugin.get(ROOT + "/jobs/%s" % job_id).json()["ID"] == job_id
    assert set(jobs[core_id]) == set(jobs[plugin_id])
    for field in jobs[core_id]:
        if field != "Content":
            assert type(jobs[core_id][field]) is type(jobs[plugin_id][field]), field
    listed = [job["ID"] for job in plugin.get("/jobs", params={"expand": ""}).json()]
    assert core_id in listed and plugin_id in listed
    # A plugin-form id nobody knows: the plugin's 404, with the core's error body.
    unknown = plugin.get("/jobs/00000000%s" % plugin_id[8:])
    assert unknown.status_code == 404 and unknown.json()["HttpStatus"] == 404

