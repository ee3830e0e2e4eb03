"""The site's rules decide, wherever a request lands (README, Access; issue 25).

A site as it is set up: three registered users; a Lua IncomingHttpRequestFilter denies alice the core's
/jobs... and /tools/create-dicom; admin (the plugin's LoopbackUser) and bob may do anything. At every
route of the plugin's that reaches a core job or create-dicom, alice is refused and nothing changes;
admin and bob, allowed at the core's paths, are allowed at the plugin's.
"""
import base64
import io
import json
import time

import pytest
import requests
from PIL import Image

from servers import REQUEST_TIMEOUT, free_port

ROOT = "/advanced-rest"
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
FILTER = """
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  if username == 'alice' and (string.sub(uri, 1, 5) == '/jobs' or uri == '/tools/create-dicom') then
    return false
  end
  return true
end
"""
REFUSED = (401, 403)


def _png():
    out = io.BytesIO()
    Image.linear_gradient("L").resize((64, 64)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _session(user):
    session = requests.Session()
    session.trust_env = False
    session.auth = (user, USERS[user])
    return session


def _until(session, url, job_id, states, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        job = session.get(url + "/jobs/" + job_id, timeout=REQUEST_TIMEOUT).json()
        if job["State"] in states or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


@pytest.fixture(scope="module")
def site(leg, tmp_path_factory):
    """(server, {user: session}, jobs): a server with the filter, a failed core store job, a finished core
    archive job, and a plugin job paused before it ran."""
    from servers import Server, UrlLeg
    if isinstance(leg, UrlLeg):
        pytest.skip("needs a server of its own (its Lua filter and users)")
    server = Server(leg, start=False, config={
        "AuthenticationEnabled": True, "RegisteredUsers": dict(USERS), "ConcurrentJobs": 1,
        "DicomModalities": {"nowhere": ["NOWHERE", "127.0.0.1", free_port()]},
        "AdvancedRest": {"LoopbackUser": "admin"}})
    server.add_lua(FILTER)
    server.session.auth = ("admin", USERS["admin"])
    try:
        server.start()
        sessions = {user: _session(user) for user in USERS}
        admin, url = sessions["admin"], server.url
        created = admin.post(url + "/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "Rules^Site"},
                                                                           "Content": _png()}))
        assert created.status_code == 200, created.text
        instance, study = created.json()["ID"], created.json()["ParentStudy"]
        store = admin.post(url + "/modalities/nowhere/store",
                           data=json.dumps({"Resources": [instance], "Asynchronous": True})).json()["ID"]
        archive = admin.post(url + "/studies/%s/archive" % study, data=json.dumps({"Asynchronous": True})).json()["ID"]
        assert _until(admin, url, store, ("Failure",))["State"] == "Failure"
        assert _until(admin, url, archive, ("Success",))["State"] == "Success"
        # A plugin job: a long series holds the one worker while the second job is paused before it runs.
        blocker = admin.post(url + "/tools/create-dicom", data=json.dumps(
            {"Tags": {}, "Content": [_png()] * 200, "Asynchronous": True, "Priority": 10})).json()["ID"]
        paused = admin.post(url + "/tools/create-dicom", data=json.dumps(
            {"Tags": {}, "Content": _png(), "Asynchronous": True})).json()["ID"]
        assert admin.post(url + "/jobs/%s/pause" % paused).status_code == 200
        assert admin.post(url + "/jobs/%s/cancel" % blocker).status_code == 200
        assert _until(admin, url, blocker, ("Failure", "Success"))["State"] in ("Failure", "Success")
        yield server, sessions, {"store": store, "archive": archive, "plugin": paused}
    finally:
        server.close()


def _what_alice_could_change(server, sessions, jobs):
    admin = sessions["admin"]
    snapshot = {"instances": sorted(admin.get(server.url + "/instances").json())}
    for role, job_id in jobs.items():
        job = admin.get(server.url + "/jobs/" + job_id).json()
        job.pop("Timestamp", None)
        snapshot[role] = job
    snapshot["archive output"] = admin.get(server.url + "/jobs/%s/archive" % jobs["archive"]).status_code
    return snapshot


def test_the_filter_refuses_alice_at_the_cores_paths(site):
    server, sessions, jobs = site
    alice = sessions["alice"]
    assert alice.get(server.url + "/jobs/" + jobs["store"]).status_code in REFUSED
    assert alice.get(server.url + "/jobs").status_code in REFUSED
    assert alice.post(server.url + "/tools/create-dicom", data="{}").status_code in REFUSED
    assert alice.get(server.url + "/system").status_code == 200  # the rest of the API is hers


def _alice_requests(jobs):
    store, archive, plugin = jobs["store"], jobs["archive"], jobs["plugin"]
    body = json.dumps({"Tags": {"PatientName": "Alice^Forbidden"}, "Content": _png()})
    return [
        ("GET", "/jobs/" + store, None, None), ("GET", "/jobs/" + archive, None, None),
        ("GET", "/jobs/%s/archive" % archive, None, None),
        ("GET", "/jobs/%s/wait" % store, {"timeout": "0"}, None),
        ("POST", "/jobs/%s/resubmit" % store, None, ""), ("POST", "/jobs/%s/pause" % store, None, ""),
        ("POST", "/jobs/%s/cancel" % store, None, ""),
        ("DELETE", "/jobs/" + store, None, None), ("DELETE", "/jobs/%s/archive" % archive, None, None),
        ("GET", "/jobs", None, None), ("GET", "/jobs", {"expand": ""}, None),
        ("GET", "/jobs", {"state": "Failure", "expand": ""}, None),
        ("GET", "/jobs/changes", {"since": "0", "timeout": "0"}, None),
        ("GET", "/jobs/" + plugin, None, None), ("POST", "/jobs/%s/resume" % plugin, None, ""),
        ("POST", "/jobs/%s/cancel" % plugin, None, ""),
        ("POST", "/tools/create-dicom", None, body),
        ("POST", "/tools/create-dicom", None, json.dumps({"Tags": {}, "Content": _png(), "Asynchronous": True})),
        ("GET", "/webhooks", None, None), ("GET", "/webhooks/deliveries", None, None),
    ]


def test_alice_gets_nothing_through_the_plugins_routes_and_nothing_changes(site):
    server, sessions, jobs = site
    before = _what_alice_could_change(server, sessions, jobs)
    alice = sessions["alice"]
    answers = {}
    for method, path, query, body in _alice_requests(jobs):
        answer = alice.request(method, server.url + ROOT + path, params=query, data=body, timeout=REQUEST_TIMEOUT)
        answers["%s %s %s" % (method, path, query or "")] = answer.status_code
        if answer.status_code not in REFUSED:
            continue
        # The core's error body, telling nothing of the jobs (their type, state, content) nor of the patient.
        assert answer.json()["HttpStatus"] == answer.status_code
        assert not {"DicomModalityStore", "Archive", "CreateDicom", "Rules^Site", '"State"'} & \
            {word for word in ("DicomModalityStore", "Archive", "CreateDicom", "Rules^Site", '"State"')
             if word in answer.text}, answer.text
    assert set(answers.values()) <= set(REFUSED), answers
    # Whatever she asked for is as it was: no job resubmitted, cancelled or deleted, no instance created.
    assert _what_alice_could_change(server, sessions, jobs) == before
    assert _what_alice_could_change(server, sessions, jobs)["store"]["State"] == "Failure"


def test_alice_keeps_what_the_site_allows_her(site):
    server, sessions, _ = site
    alice = sessions["alice"]
    assert alice.get(server.url + ROOT + "/system").status_code == 200
    assert alice.get(server.url + ROOT + "/metrics").status_code == 200  # /tools/metrics-prometheus is hers


def test_admin_and_bob_are_allowed_at_the_plugins_routes_as_at_the_cores(site):
    server, sessions, jobs = site
    for user in ("admin", "bob"):
        session = sessions[user]
        core = session.get(server.url + "/jobs/" + jobs["archive"]).json()
        own = session.get(server.url + ROOT + "/jobs/" + jobs["archive"])
        assert own.status_code == 200, (user, own.text)
        assert {k: v for k, v in own.json().items() if k != "Timestamp"} == \
            {k: v for k, v in core.items() if k != "Timestamp"}
        archive = session.get(server.url + ROOT + "/jobs/%s/archive" % jobs["archive"])
        assert archive.status_code == 200 and archive.content[:4] == b"PK\x03\x04", user
        listed = session.get(server.url + ROOT + "/jobs", params={"expand": ""})
        assert listed.status_code == 200 and jobs["store"] in {job["ID"] for job in listed.json()}, user
        changes = session.get(server.url + ROOT + "/jobs/changes", params={"since": 0, "timeout": 0}).json()
        assert jobs["archive"] in {change["ID"] for change in changes["Changes"]}, user
        made = session.post(server.url + ROOT + "/tools/create-dicom",
                            data=json.dumps({"Tags": {"PatientName": "Rules^%s" % user}, "Content": _png()}))
        assert made.status_code == 200 and made.json()["ID"] in session.get(server.url + "/instances").json(), user
        assert session.get(server.url + ROOT + "/jobs/" + jobs["plugin"]).status_code == 200, user
    # bob, not the LoopbackUser, resubmits the failed transfer through the plugin's route: it runs again.
    bob = sessions["bob"]
    first = bob.get(server.url + "/jobs/" + jobs["store"]).json()
    assert bob.post(server.url + ROOT + "/jobs/%s/resubmit" % jobs["store"], data="").status_code == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # it runs again (and fails again: nothing listens there)
        job = bob.get(server.url + "/jobs/" + jobs["store"]).json()
        if job["State"] != "Failure" or job.get("CompletionTime") != first.get("CompletionTime"):
            break
        time.sleep(0.05)
    assert job["State"] != "Failure" or job.get("CompletionTime") != first.get("CompletionTime"), job
