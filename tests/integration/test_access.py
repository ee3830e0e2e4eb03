"""Who may reach the plugin: RemoteAccessAllowed and authentication, from a real non-loopback client.

The client runs in a network namespace made by the test, joined to the host by a veth pair
(10.200.N.1 on the host, 10.200.N.2 inside): its requests reach Orthanc from a non-loopback
address. Orthanc listens on every address even with RemoteAccessAllowed false, and refuses the
other clients itself (401, like a missing password). The requests come from every path and method of the live
{Root}/openapi.json (the core routes the plugin serves included), each with a concrete id and
body; whether a refused request reached a handler is read from the plugin's request counter
(orthanc_plugin_requests_total), the instances, and the jobs.

The forky leg's Orthanc is chrooted only, and the docker leg's containers use the host's network:
the same namespace reaches them all. Where a namespace cannot be made, the tests skip and say why.
"""
import base64
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

ROOT = "/advanced-rest"
# The core's routes the plugin answers with ServeCoreRoutes (the default), besides its own.
CORE_ROUTES = {("/tools/create-dicom", "post"), ("/jobs", "get"), ("/jobs/{id}", "get"), ("/jobs/{id}", "delete"),
               ("/jobs/{id}/{name}", "get"), ("/jobs/{id}/{name}", "post"), ("/jobs/{id}/{name}", "delete"),
               ("/tools/metrics-prometheus", "get")}
# Routes of the core alone, for comparison: what Orthanc itself answers a client it refuses.
CORE_ONLY = [("GET", "/system", None, None), ("GET", "/instances", None, None)]
CREATE_BODY = json.dumps({"Tags": {"PatientName": "Access^Test"}})
USERS = {"access-user": "access-secret"}

# (path in openapi.json without the root, method) -> concrete requests: (path, query, body). The
# job placeholders: {paused} (a plugin job that never ran), {failed} (a cancelled plugin job),
# {archive} (a finished core job with an output). Each would change something if it reached a handler.
CASES = {
    ("/tools/create-dicom", "post"): [("/tools/create-dicom", None, CREATE_BODY),
                                      ("/tools/create-dicom", None, json.dumps({"Tags": {}, "Asynchronous": True}))],
    ("/system", "get"): [("/system", None, None)],
    ("/metrics", "get"): [("/metrics", None, None)],
    ("/tools/metrics-prometheus", "get"): [("/tools/metrics-prometheus", None, None)],
    ("/openapi.json", "get"): [("/openapi.json", None, None)],
    ("/jobs", "get"): [("/jobs", None, None), ("/jobs", {"expand": "", "state": "Paused,Failure"}, None)],
    ("/jobs/changes", "get"): [("/jobs/changes", {"since": "0", "timeout": "0"}, None)],
    ("/jobs/{id}", "get"): [("/jobs/{paused}", None, None)],
    ("/jobs/{id}", "delete"): [("/jobs/{failed}", None, None)],
    ("/jobs/{id}/{name}", "get"): [("/jobs/{paused}/wait", {"timeout": "0"}, None),
                                   ("/jobs/{archive}/archive", None, None)],
    ("/jobs/{id}/{name}", "post"): [("/jobs/{paused}/resume", None, ""), ("/jobs/{paused}/cancel", None, ""),
                                    ("/jobs/{failed}/resubmit", None, ""), ("/jobs/{paused}/pause", None, "")],
    ("/jobs/{id}/{name}", "delete"): [("/jobs/{archive}/archive", None, None)],
    ("/webhooks", "get"): [("/webhooks", None, None)],
    ("/webhooks/deliveries", "get"): [("/webhooks/deliveries", {"state": "failed"}, None)],
    ("/webhooks/deliveries/{id}/redeliver", "post"): [("/webhooks/deliveries/1/redeliver", None, "")],
    ("/webhooks/test", "post"): [("/webhooks/test", None, json.dumps({"Endpoint": "none"}))],
    ("/ui", "get"): [("/ui", None, None)],
    ("/ui/index.html", "get"): [("/ui/index.html", None, None)],
    ("/ui/app.js", "get"): [("/ui/app.js", None, None)],
    ("/ui/style.css", "get"): [("/ui/style.css", None, None)],
}
# An id of the plugin's form (UUID version 8) that no job has: at the core's paths the plugin answers
# only for ids of its form, the core for the others (README, Routes).
NO_SUCH_JOB = "00000000-0000-8000-8000-000000000000"
UNKNOWN_JOBS = {"paused": NO_SUCH_JOB, "failed": NO_SUCH_JOB, "archive": NO_SUCH_JOB}


def _blocker_png():
    """A 2048x2048 gray gradient: a few KiB to send, seconds of work for a series of 40."""
    out = io.BytesIO()
    Image.linear_gradient("L").resize((2048, 2048)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


# -- the client in a network namespace ---------------------------------------------------------

# Runs as `python3 -c` (stdlib only), inside the namespace or not: one process for a whole table.
# Reads [{method, url, body, auth}] on stdin, writes [{status, body} or {status: None, error}].
CLIENT = r"""
import base64, json, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
answers = []
for r in json.load(sys.stdin):
    headers = {}
    if r["auth"]:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(r["auth"]).encode()).decode()
    data = None if r["body"] is None else r["body"].encode()
    request = urllib.request.Request(r["url"], data=data, method=r["method"], headers=headers)
    try:
        with opener.open(request, timeout=30) as answer:
            answers.append({"status": answer.status, "body": answer.read(4000).decode("latin-1")})
    except urllib.error.HTTPError as error:
        answers.append({"status": error.code, "body": error.read(4000).decode("latin-1")})
    except OSError as error:
        answers.append({"status": None, "error": repr(error)})
json.dump(answers, sys.stdout)
"""


def _ip(*argv, check=True):
    return subprocess.run(["ip", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=check)


class Namespace:
    """A network namespace joined to the host by a veth pair; `remove()` deletes both."""

    _serial = itertools.count(1)

    def __init__(self):
        # Interface names: at most 15 characters, unique per process and namespace.
        tag = "ar%d-%d" % (os.getpid() % 100000, next(self._serial))
        self.name, self.host_link, self.inner_link = "advanced-rest-" + tag, tag + "h", tag + "n"
        self.subnet = self._free_subnet()
        self.host_ip, self.inner_ip = "10.200.%d.1" % self.subnet, "10.200.%d.2" % self.subnet
        self.created = []

    @staticmethod
    def _free_subnet():
        used = {int(n) for n in re.findall(r"inet 10\.200\.(\d+)\.", _ip("-4", "-o", "addr", "show").stdout)}
        start = os.getpid() % 200  # concurrent runs start apart
        for n in itertools.chain(range(start + 20, 255), range(20, start + 20)):
            if n not in used:
                return n
        raise RuntimeError("no free 10.200.N.0/24 subnet")

    def create(self):
        """Make the namespace and link; raises CalledProcessError with ip's message."""
        _ip("netns", "add", self.name)
        self.created.append(("netns", "delete", self.name))
        _ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.inner_link)
        self.created.append(("link", "delete", self.host_link))  # takes its peer along
        _ip("link", "set", self.inner_link, "netns", self.name)
        _ip("addr", "add", self.host_ip + "/24", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        for argv in (("addr", "add", self.inner_ip + "/24", "dev", self.inner_link),
                     ("link", "set", self.inner_link, "up"), ("link", "set", "lo", "up")):
            _ip("netns", "exec", self.name, "ip", *argv)

    def remove(self):
        for argv in reversed(self.created):
            _ip(*argv, check=False)
        self.created = []

    def url(self, server):
        """The server's address as seen from inside the namespace (not loopback)."""
        return "http://%s:%d" % (self.host_ip, server.http_port)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]


def _send(requests, base_url, auth=None, prefix=()):
    """Send (method, path, query, body) requests from one client process; prefix runs it elsewhere
    (inside the namespace). Returns [{status, body} | {status: None, error}] in order."""
    table = [{"method": method, "url": base_url + path + ("?" + urllib.parse.urlencode(query) if query else ""),
              "body": body, "auth": list(auth) if auth else None} for method, path, query, body in requests]
    done = subprocess.run([*prefix, sys.executable, "-c", CLIENT], input=json.dumps(table), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def netns():
    """A Namespace; skips when this machine cannot make one."""
    if os.geteuid() != 0:
        pytest.skip("a network namespace needs root")
    if shutil.which("ip") is None:
        pytest.skip("no ip command (iproute2) to make a network namespace")
    namespace = Namespace()
    try:
        namespace.create()
    except subprocess.CalledProcessError as error:
        namespace.remove()
        pytest.skip("cannot make a network namespace here: %s: %s" % (" ".join(error.cmd), error.output.strip()))
    yield namespace
    namespace.remove()


# -- what the plugin serves and what it did ----------------------------------------------------

def _plugin_requests(server, jobs):
    """Every path and method of the live openapi.json as concrete (method, path, query, body)."""
    document = server.get(ROOT + "/openapi.json").json()
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert CORE_ROUTES <= operations, "core routes missing from openapi.json: %s" % (CORE_ROUTES - operations)
    requests = []
    for path, method in sorted(operations):
        root = ROOT if path.startswith(ROOT + "/") else ""
        cases = CASES.get((path[len(root):], method))
        assert cases, "no concrete request for %s %s: add one to CASES" % (method.upper(), path)
        requests += [(method.upper(), root + template.format(**jobs), query, body) for template, query, body in cases]
    return requests


def _counted(server):
    """orthanc_plugin_requests_total by (route, method, status), but the loopback scrapes' own series."""
    text = server.get(ROOT + "/metrics").text
    counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "orthanc_plugin_requests_total":
                key = (sample.labels["route"], sample.labels["method"], sample.labels["status"])
                counts[key] = sample.value
    counts.pop((ROOT + "/metrics", "GET", "200"), None)  # this scrape and the previous ones
    return counts


def _submit(server, body):
    answer = server.post("/tools/create-dicom", data=json.dumps(dict(body, Asynchronous=True)))
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def _until(server, job_id, states, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = server.get("/jobs/%s" % job_id).json()
        if job["State"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError("job %s never reached %s: %s" % (job_id, states, job))


def _make_jobs(server):
    """{paused, failed, archive}: jobs that a request reaching its handler would change.

    The server runs one worker: a long series occupies it while a second job is paused before it
    ever runs, then the series is cancelled (a Failure, nothing stored).
    """
    blocker = _submit(server, {"Tags": {}, "Content": [_blocker_png()] * 40, "Priority": 10})
    paused = _submit(server, {"Tags": {"PatientName": "Access^Paused"}})
    assert server.post("/jobs/%s/pause" % paused).status_code == 200
    assert server.post("/jobs/%s/cancel" % blocker).status_code == 200
    assert _until(server, paused, ("Paused", "Success", "Failure"))["State"] == "Paused"
    assert _until(server, blocker, ("Success", "Failure"))["State"] == "Failure"
    study = server.post("/tools/create-dicom", data=CREATE_BODY).json()["ParentStudy"]
    archive = server.post("/studies/%s/archive" % study, data=json.dumps({"Asynchronous": True})).json()["ID"]
    assert _until(server, archive, ("Success", "Failure"))["State"] == "Success"
    return {"paused": paused, "failed": blocker, "archive": archive}


def _settled_count(server):
    """_counted once two scrapes agree: a request is counted just after its answer is sent."""
    counts = _counted(server)
    for _ in range(25):
        time.sleep(0.2)
        again = _counted(server)
        if again == counts:
            break
        counts = again
    return counts


def _feed_caught_up(server, jobs, timeout=30):
    """Wait until the change feed's newest entry of each job shows its state and progress.

    Core jobs reach the feed through a look every second: without this, a look that lands
    between two snapshots would count as a change made by a refused request.
    """
    deadline = time.monotonic() + timeout
    while True:
        changes = server.get(ROOT + "/jobs/changes", params={"since": 0, "timeout": 0}).json()["Changes"]
        newest = {change["ID"]: (change["State"], change["Progress"]) for change in changes}
        now = {job_id: (job["State"], job["Progress"])
               for job_id, job in ((job_id, server.get("/jobs/%s" % job_id).json()) for job_id in jobs.values())}
        if all(newest.get(job_id) == now[job_id] for job_id in now):
            return
        if time.monotonic() > deadline:
            raise AssertionError("the change feed never caught up: %s, jobs %s" % (newest, now))
        time.sleep(0.1)


def _state(server, jobs):
    """What a handler reached would have changed: instances, the jobs and their outputs."""
    _feed_caught_up(server, jobs)
    snapshot = {"instances": sorted(server.get("/instances").json()),
                "last change": server.get(ROOT + "/jobs/changes", params={"timeout": 0}).json()["Last"],
                "archive output": server.get("/jobs/%s/archive" % jobs["archive"]).status_code}
    for role, job_id in jobs.items():
        job = server.get("/jobs/%s" % job_id).json()
        job.pop("Timestamp", None)  # the time of the request
        snapshot[role] = job
    return snapshot


def _statuses(requests, answers):
    return {"%s %s" % (method, path): answer.get("status") or answer.get("error")
            for (method, path, _, _), answer in zip(requests, answers)}


def _wait_counted(server, before, expected, timeout=60):
    """The number of requests counted since `before` once it reaches `expected` (counted after answering)."""
    deadline = time.monotonic() + timeout
    while True:
        after = _counted(server)
        grown = sum(after.values()) - sum(before.values())
        if grown >= expected or time.monotonic() > deadline:
            return grown
        time.sleep(0.1)


# -- RemoteAccessAllowed -----------------------------------------------------------------------

def test_no_plugin_route_is_reachable_from_a_remote_address(orthanc_factory, netns):
    server = orthanc_factory(config={"ConcurrentJobs": 1})  # RemoteAccessAllowed false: the default
    assert server.config()["RemoteAccessAllowed"] is False
    jobs = _make_jobs(server)
    requests = _plugin_requests(server, jobs)
    before = _state(server, jobs)
    counted = _settled_count(server)

    # The docker leg's servers want credentials: give them, so that only the address is refused.
    auth = server.session.auth
    # The core refuses a remote client with 401 (Orthanc 1.10.1 and 1.13.0), credentials or not:
    # the plugin's routes must answer alike, never from a handler.
    core = _send(CORE_ONLY, netns.url(server), auth, netns.prefix())
    assert {answer["status"] for answer in core} == {401}, _statuses(CORE_ONLY, core)
    answers = _send(requests, netns.url(server), auth, netns.prefix())
    statuses = _statuses(requests, answers)
    assert set(statuses.values()) == {401}, statuses

    assert _settled_count(server) == counted  # no handler ran
    assert _state(server, jobs) == before
    # The same requests through loopback do reach it (the table is not refused for another reason).
    assert _send([("GET", ROOT + "/system", None, None)], server.url, auth)[0]["status"] == 200


def test_with_remote_access_allowed_the_same_requests_reach_the_plugin(orthanc_factory, netns):
    server = orthanc_factory(config={"RemoteAccessAllowed": True})
    requests = _plugin_requests(server, UNKNOWN_JOBS)
    auth = server.session.auth
    before = _settled_count(server)
    system = _send([("GET", ROOT + "/system", None, None)], netns.url(server), auth, netns.prefix())[0]
    assert system["status"] == 200 and '"advanced-rest"' in system["body"], system
    answers = _send(requests, netns.url(server), auth, netns.prefix())
    statuses = _statuses(requests, answers)
    assert not {401, 403, None} & set(statuses.values()), statuses
    scrapes = sum(1 for method, path, _, _ in requests if (method, path) == ("GET", ROOT + "/metrics"))
    # {Root}/ui answers 301 to the page, which the client follows: a second request of the plugin's.
    followed = sum(1 for method, path, _, _ in requests if (method, path) == ("GET", ROOT + "/ui"))
    expected = len(requests) + 1 - scrapes + followed
    assert _wait_counted(server, before, expected) == expected


# -- authentication ----------------------------------------------------------------------------

@pytest.fixture
def authenticated(orthanc_factory):
    """A server open to remote clients, with authentication and one registered user."""
    return orthanc_factory(config={"RemoteAccessAllowed": True, "AuthenticationEnabled": True,
                                   "RegisteredUsers": dict(USERS), "ConcurrentJobs": 1})


def test_every_plugin_route_needs_credentials(authenticated, netns):
    server = authenticated
    jobs = _make_jobs(server)
    requests = _plugin_requests(server, jobs)
    before = _state(server, jobs)
    counted = _settled_count(server)
    for credentials in (None, ("access-user", "wrong"), ("nobody", "access-secret")):
        for where, base_url, prefix in (("remote", netns.url(server), netns.prefix()), ("loopback", server.url, ())):
            answers = _send(requests, base_url, credentials, prefix)
            statuses = _statuses(requests, answers)
            assert set(statuses.values()) == {401}, (where, credentials, statuses)
            core = _send(CORE_ONLY, base_url, credentials, prefix)
            assert {answer["status"] for answer in core} == {401}, (where, credentials, core)
    assert _settled_count(server) == counted  # no handler ran
    assert _state(server, jobs) == before


def test_with_credentials_the_plugin_routes_work(authenticated, netns):
    server = authenticated
    auth = next(iter(USERS.items()))
    before = set(server.get("/instances").json())
    requests = [("GET", ROOT + "/system", None, None), ("GET", ROOT + "/openapi.json", None, None),
                ("GET", "/jobs", {"state": "Success"}, None), ("GET", "/tools/metrics-prometheus", None, None),
                ("POST", "/tools/create-dicom", None, CREATE_BODY),
                ("POST", ROOT + "/tools/create-dicom", None, CREATE_BODY)]
    answers = _send(requests, netns.url(server), auth, netns.prefix())
    statuses = _statuses(requests, answers)
    assert set(statuses.values()) == {200}, statuses
    created = {json.loads(answer["body"])["ID"] for answer in answers[-2:]}
    assert created <= set(server.get("/instances").json()) - before and len(created) == 2
