"""Jobs on real Orthanc servers: create-dicom as a job, and one API over core and plugin jobs."""
import base64
import io
import json
import os
import subprocess
import sysconfig
import time

import pytest
from PIL import Image

from create_dicom_cases import png_data_uri
from servers import new_session

JOB_FIELDS = {"CompletionTime", "Content", "CreationTime", "EffectiveRuntime", "ErrorCode", "ErrorDescription",
              "ErrorDetails", "ID", "Priority", "Progress", "State", "Timestamp", "Type"}


def _big_png():
    """A 2048x2048 gray gradient: a few KiB to send, 4 MiB to decode and store (a slow step)."""
    image = Image.linear_gradient("L").resize((2048, 2048))
    out = io.BytesIO()
    image.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


BIG_PNG = _big_png()


def _submit(server, body, root=""):
    answer = server.post(root + "/tools/create-dicom", data=json.dumps(dict(body, Asynchronous=True)))
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["Path"] == "/jobs/%s" % job["ID"] and sorted(job) == ["ID", "Path"]
    return job["ID"]


def _wait(server, job_id, timeout=60):
    answer = server.get("/jobs/%s/wait" % job_id, params={"timeout": timeout}, timeout=timeout + 10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _until(server, job_id, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = server.get("/jobs/%s" % job_id).json()
        if predicate(job):
            return job
        time.sleep(0.01)
    raise AssertionError("job %s never got there: %s" % (job_id, job))


def _instances(server):
    return set(server.get("/instances").json())


def test_asynchronous_create_dicom_is_a_job_with_the_synchronous_answer(plugin):
    job_id = _submit(plugin, {"Tags": {"PatientName": "Async^Job"}, "Content": png_data_uri("RGB"), "Priority": 4})
    job = _wait(plugin, job_id)
    assert set(job) == JOB_FIELDS
    assert (job["State"], job["Type"], job["Priority"], job["Progress"], job["ErrorCode"]) == \
        ("Success", "CreateDicom", 4, 100, 0)
    content = job["Content"]
    assert sorted(content) == ["ID", "ParentPatient", "ParentSeries", "ParentStudy", "Path", "Status"]
    assert plugin.get(content["Path"]).json()["ParentSeries"] == content["ParentSeries"]
    assert plugin.get("/advanced-rest/jobs/%s" % job_id).json()["ID"] == job_id


def test_plugin_jobs_have_the_shape_of_core_jobs(plugin):
    study = plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {}})).json()["ParentStudy"]
    core_id = plugin.post("/studies/%s/archive" % study, data=json.dumps({"Asynchronous": True})).json()["ID"]
    ours = _wait(plugin, _submit(plugin, {"Tags": {}}))
    theirs = _wait(plugin, core_id)
    assert set(ours) == set(theirs)
    for field in JOB_FIELDS - {"Content"}:
        assert type(ours[field]) is type(theirs[field]), field


def test_a_core_job_goes_through_every_monitoring_route(plugin):
    study = plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "Core^Job"}})).json()
    job_id = plugin.post("/studies/%s/archive" % study["ParentStudy"], data=json.dumps({"Asynchronous": True})).json()["ID"]
    for root in ("", "/advanced-rest"):
        assert job_id in plugin.get(root + "/jobs").json()
        job = plugin.get(root + "/jobs/%s/wait" % job_id, params={"timeout": 30}).json()
        assert (job["ID"], job["Type"], job["State"]) == (job_id, "Archive", "Success")
        assert plugin.get(root + "/jobs/%s" % job_id).json()["Type"] == "Archive"
        archive = plugin.get(root + "/jobs/%s/archive" % job_id)
        assert archive.status_code == 200 and archive.content.startswith(b"PK")
        assert archive.headers["Content-Type"] == "application/zip"
        assert plugin.post(root + "/jobs/%s/pause" % job_id).status_code == 200  # finished: nothing to do
        assert plugin.post(root + "/jobs/%s/resume" % job_id).status_code == 400
        expanded = plugin.get(root + "/jobs", params={"expand": "", "type": "Archive"}).json()
        assert job_id in [j["ID"] for j in expanded] and {j["Type"] for j in expanded} == {"Archive"}
        assert job_id in plugin.get(root + "/jobs", params={"state": "Success,Failure"}).json()
        assert job_id not in plugin.get(root + "/jobs", params={"state": "Pending"}).json()


def test_filters_and_expand_over_plugin_jobs(plugin):
    job_id = _submit(plugin, {"Tags": {}})
    _wait(plugin, job_id)
    expanded = plugin.get("/jobs", params={"expand": "", "type": "CreateDicom", "state": "Success"}).json()
    assert job_id in [j["ID"] for j in expanded]
    assert all(j["Type"] == "CreateDicom" and j["State"] == "Success" for j in expanded)
    assert job_id not in plugin.get("/jobs", params={"type": "Archive"}).json()


@pytest.mark.parametrize("method, path, params, status", [
    ("get", "/jobs/no-such-job", None, 404),
    ("get", "/jobs/no-such-job/wait", {"timeout": "1"}, 404),
    ("post", "/jobs/no-such-job/pause", None, 400),
    ("get", "/jobs", {"state": "Sleeping"}, 400),
    ("get", "/jobs", {"state": ""}, 400),
], ids=["unknown-job", "wait-unknown", "action-unknown", "bad-state", "empty-state"])
def test_bad_input_gets_a_clear_4xx(plugin, method, path, params, status):
    # At the core's paths an id that is not of the plugin's form is the core's to answer (its status,
    # and on Orthanc 1.10 no body); under {Root} the plugin answers, with the core's JSON error body.
    for root in ("", "/advanced-rest"):
        answer = getattr(plugin, method)(root + path, params=params)
        assert answer.status_code == status, root
        if root or not path.startswith("/jobs/no-such-job") or path.endswith("/wait"):
            assert answer.json()["HttpStatus"] == status, root


@pytest.mark.parametrize("timeout", ["soon", "-1", "100000"])
def test_bad_wait_timeouts_are_refused(plugin, timeout):
    job_id = _submit(plugin, {"Tags": {}})
    answer = plugin.get("/jobs/%s/wait" % job_id, params={"timeout": timeout})
    assert answer.status_code == 400 and "timeout" in answer.json()["Details"]
    assert _wait(plugin, job_id)["State"] == "Success"  # leaves nothing running on the shared server


def test_bad_async_fields_are_refused_at_once(plugin):
    for body in ({"Tags": {}, "Asynchronous": "yes"}, {"Tags": {}, "Asynchronous": True, "Priority": "high"},
                 {"Tags": {"NoSuchTag": "x"}, "Asynchronous": True}):
        assert plugin.post("/tools/create-dicom", data=json.dumps(body)).status_code == 400


def test_a_failing_job_stores_nothing_and_can_be_resubmitted(plugin):
    plugin.jobs_settled()  # the shared server: an earlier test's job must not store meanwhile
    before = _instances(plugin)
    body = {"Tags": {}, "Content": [png_data_uri("L"), png_data_uri("L"), "data:image/png;base64,AAAA"]}
    job_id = _submit(plugin, body)
    job = _wait(plugin, job_id)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 15) and "Content[2]" in job["ErrorDetails"]
    assert _instances(plugin) == before
    assert plugin.post("/jobs/%s/resubmit" % job_id).status_code == 200
    assert _wait(plugin, job_id)["State"] == "Failure"
    assert _instances(plugin) == before
    assert plugin.post("/jobs/%s/resume" % job_id).status_code == 400
    assert plugin.delete("/jobs/%s" % job_id).status_code == 200
    assert plugin.get("/jobs/%s" % job_id).status_code == 404


@pytest.fixture
def one_worker(orthanc_factory):
    return orthanc_factory(config={"ConcurrentJobs": 1, "JobsHistorySize": 50})


def test_a_running_series_pauses_between_instances_and_resumes(one_worker):
    server = one_worker
    before = _instances(server)
    job_id = _submit(server, {"Tags": {}, "Content": [BIG_PNG] * 40})
    _until(server, job_id, lambda j: j["State"] == "Running" and j["Progress"] > 0)
    assert server.post("/jobs/%s/pause" % job_id).status_code == 200
    paused = _until(server, job_id, lambda j: j["State"] != "Running")
    assert paused["State"] == "Paused" and 0 < paused["Progress"] < 100
    stored = len(_instances(server) - before)
    assert 0 < stored < 40 and stored == paused["Content"]["InstancesStored"]
    assert server.post("/jobs/%s/resume" % job_id).status_code == 200
    job = _wait(server, job_id)
    assert job["State"] == "Success" and len(_instances(server) - before) == 40
    assert len(server.get("/series/%s/instances" % job["Content"]["ID"]).json()) == 40


def test_a_cancelled_series_leaves_nothing_stored(one_worker):
    server = one_worker
    before = _instances(server)
    job_id = _submit(server, {"Tags": {}, "Content": [BIG_PNG] * 40})
    _until(server, job_id, lambda j: j["State"] == "Running" and j["Progress"] > 0)
    assert server.post("/jobs/%s/cancel" % job_id).status_code == 200
    job = _wait(server, job_id)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37)
    assert _instances(server) == before


def test_pending_jobs_pause_and_cancel_at_once_and_run_by_priority(one_worker):
    server = one_worker
    blocker = _submit(server, {"Tags": {}, "Content": [BIG_PNG] * 20})
    _until(server, blocker, lambda j: j["State"] == "Running")
    jobs = {name: _submit(server, {"Tags": {"PatientName": name}, "Priority": priority})
            for name, priority in (("low", -5), ("high", 9), ("mid", 0), ("paused", 10), ("cancelled", 10))}
    assert server.post("/jobs/%s/pause" % jobs["paused"]).status_code == 200
    assert server.post("/jobs/%s/cancel" % jobs["cancelled"]).status_code == 200
    assert server.get("/jobs/%s" % jobs["paused"]).json()["State"] == "Paused"
    cancelled = server.get("/jobs/%s" % jobs["cancelled"]).json()
    assert (cancelled["State"], cancelled["ErrorCode"]) == ("Failure", 37)
    finished = {name: _wait(server, jobs[name]) for name in ("low", "high", "mid")}
    order = sorted(finished, key=lambda name: finished[name]["CompletionTime"])
    assert order == ["high", "mid", "low"]
    assert server.get("/jobs/%s" % jobs["paused"]).json()["State"] == "Paused"
    assert server.post("/jobs/%s/resume" % jobs["paused"]).status_code == 200
    assert _wait(server, jobs["paused"])["State"] == "Success"


def test_history_keeps_the_newest_finished_jobs(orthanc_factory):
    server = orthanc_factory(config={"ConcurrentJobs": 1, "JobsHistorySize": 2})
    ids = [_submit(server, {"Tags": {}}) for _ in range(3)]
    _wait(server, ids[-1])
    listed = server.get("/jobs").json()
    assert ids[0] not in listed and ids[1] in listed and ids[2] in listed


def test_changes_follow_plugin_and_core_jobs_with_one_open_request(plugin):
    import threading

    start = plugin.get("/advanced-rest/jobs/changes").json()["Last"]
    holder = {}

    def listen():
        holder["answer"] = plugin.get("/advanced-rest/jobs/changes", params={"since": start, "timeout": 20}, timeout=30)
        holder["at"] = time.monotonic()

    listener = threading.Thread(target=listen)
    listener.start()
    time.sleep(0.3)
    submitted = time.monotonic()
    job_id = _submit(plugin, {"Tags": {}})
    listener.join(30)
    assert holder["answer"].status_code == 200 and holder["at"] - submitted < 5
    assert job_id in [c["ID"] for c in holder["answer"].json()["Changes"]]

    study = plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {}})).json()["ParentStudy"]
    core_id = plugin.post("/studies/%s/archive" % study, data=json.dumps({"Asynchronous": True})).json()["ID"]
    _wait(plugin, core_id)
    _wait(plugin, job_id)
    seen, since, deadline = {}, start, time.monotonic() + 20
    while time.monotonic() < deadline and not ({job_id, core_id} <= set(seen) and
                                               seen[job_id][-1] == seen[core_id][-1] == "Success"):
        answer = plugin.get("/advanced-rest/jobs/changes", params={"since": since, "timeout": 5}).json()
        for change in answer["Changes"]:
            seen.setdefault(change["ID"], []).append(change["State"])
            assert change["Origin"] == ("core" if change["ID"] == core_id else "plugin") or change["ID"] not in (job_id, core_id)
        since = answer["Last"]
    assert seen[job_id][-1] == "Success" and seen[core_id][-1] == "Success"


@pytest.mark.parametrize("params", [{"since": "x"}, {"since": "-1"}, {"timeout": "x"}, {"timeout": "99999"}])
def test_bad_changes_arguments_are_refused(plugin, params):
    assert plugin.get("/advanced-rest/jobs/changes", params=params).status_code == 400


def _wait_after_restart(server, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = server.get("/jobs/%s/wait" % job_id, params={"timeout": 5})
        if answer.status_code == 200 and answer.json()["State"] in ("Success", "Failure"):
            return answer.json()
        time.sleep(0.2)
    raise AssertionError("job %s did not finish after the restart" % job_id)


def test_jobs_survive_a_clean_restart(orthanc_factory):
    server = orthanc_factory(config={"ConcurrentJobs": 1})
    done = _wait(server, _submit(server, {"Tags": {"PatientName": "Before^Restart"}}))
    paused = _submit(server, {"Tags": {}, "Content": [BIG_PNG] * 30})
    server.post("/jobs/%s/pause" % paused)
    _until(server, paused, lambda j: j["State"] == "Paused")
    time.sleep(1.5)  # saved within a second of the change
    server.restart()
    restored = server.get("/jobs/%s" % done["ID"]).json()
    assert (restored["State"], restored["Content"]) == ("Success", done["Content"])
    assert server.get("/jobs/%s" % paused).json()["State"] == "Paused"
    assert server.post("/jobs/%s/resume" % paused).status_code == 200
    job = _wait_after_restart(server, paused)
    assert job["State"] == "Success"
    assert len(server.get("/series/%s/instances" % job["Content"]["ID"]).json()) == 30


def test_a_series_interrupted_by_kill_9_finishes_after_restart_without_duplicates(orthanc_factory):
    server = orthanc_factory(config={"ConcurrentJobs": 1})
    before = _instances(server)
    job_id = _submit(server, {"Tags": {}, "Content": [BIG_PNG] * 60})
    # The job is saved (with its request) as soon as it is submitted, then within a second of each change.
    _until(server, job_id, lambda j: j["State"] == "Running" and j["Progress"] >= 5)
    stored_before_crash = len(_instances(server) - before)
    server.kill()
    server.start()
    job = _wait_after_restart(server, job_id)
    assert job["State"] == "Success", job
    assert 0 < stored_before_crash < 60, "the crash must come in the middle of the series"
    assert len(_instances(server) - before) == 60
    assert len(server.get("/series/%s/instances" % job["Content"]["ID"]).json()) == 60


def test_no_jobs_on_the_command_line_skips_the_reload(orthanc_factory):
    server = orthanc_factory(config={"ConcurrentJobs": 1})
    job_id = _submit(server, {"Tags": {}})
    _wait(server, job_id)
    time.sleep(1.5)
    server.stop()
    server.args = tuple(server.args) + ("--no-jobs",)
    server.start()
    assert server.get("/jobs/%s" % job_id).status_code == 404


def test_save_jobs_off_keeps_nothing(orthanc_factory):
    server = orthanc_factory(config={"SaveJobs": False})
    job_id = _submit(server, {"Tags": {}})
    _wait(server, job_id)
    time.sleep(1.2)
    server.restart()
    assert server.get("/jobs/%s" % job_id).status_code == 404


def _client(server):
    from advanced_rest_client import Client

    user, password = server.session.auth or (None, None)
    return Client(server.url, user, password, session=new_session())


def _advanced_rest(server, *args, timeout=90):
    """Run the installed `advanced-rest` command (tests/requirements.txt installs ./client) against `server`."""
    command = os.path.join(sysconfig.get_path("scripts"), "advanced-rest")
    assert os.path.exists(command), "no %s: rebuild the test venv (scripts/make-venv.sh)" % command
    user, password = server.session.auth or (None, None)
    credentials = ["--user", user, "--password", password] if user else []
    return subprocess.run([command, "--url", server.url] + credentials + list(args), capture_output=True, text=True,
                          timeout=timeout)


def test_the_client_waits_for_jobs_and_lists_them(plugin):
    from advanced_rest_client import JobTimeout

    client = _client(plugin)
    job = client.create_dicom({"Tags": {}, "Content": [BIG_PNG] * 10}, asynchronous=True)
    assert client.wait_for_job(job["ID"], timeout=60)["State"] == "Success"
    assert job["ID"] in client.jobs(states=["Success"], types=["CreateDicom"])
    assert job["ID"] not in client.jobs(states=["Failure"])

    slow = client.create_dicom({"Tags": {}, "Content": [BIG_PNG] * 40}, asynchronous=True)
    with pytest.raises(JobTimeout):
        client.wait_for_job(slow["ID"], timeout=0.01)
    client.wait_for_job(slow["ID"], timeout=120)


def test_the_client_command_monitors_waits_and_lists(plugin):
    client = _client(plugin)
    job = client.create_dicom({"Tags": {}, "Content": [BIG_PNG] * 10}, asynchronous=True)
    run = _advanced_rest(plugin, "monitor", job["ID"], "--timeout", "60")
    assert run.returncode == 0, run.stderr
    assert "100% Success" in run.stdout

    run = _advanced_rest(plugin, "wait", job["ID"], "--timeout", "60")
    assert run.returncode == 0, run.stderr
    printed, job_now = json.loads(run.stdout), client.job(job["ID"])
    printed.pop("Timestamp"), job_now.pop("Timestamp")  # the time of the answer on some servers
    assert printed == job_now

    failing = client.create_dicom({"Tags": {}, "Content": "data:image/png;base64,AAAA"}, asynchronous=True)
    run = _advanced_rest(plugin, "monitor", failing["ID"])
    assert run.returncode == 1 and "Failure" in run.stdout, run.stderr
    run = _advanced_rest(plugin, "wait", failing["ID"])
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["State"] == "Failure"

    slow = client.create_dicom({"Tags": {}, "Content": [BIG_PNG] * 40}, asynchronous=True)
    run = _advanced_rest(plugin, "wait", slow["ID"], "--timeout", "0.01")
    assert run.returncode == 2 and "timed out" in run.stderr, (run.stdout, run.stderr)
    run = _advanced_rest(plugin, "jobs", "--state", "Running,Pending", "--type", "CreateDicom")
    assert run.returncode == 0, run.stderr
    assert slow["ID"] in json.loads(run.stdout)
    client.wait_for_job(slow["ID"], timeout=120)

    run = _advanced_rest(plugin, "jobs", "--state", "Success,Failure", "--type", "CreateDicom", "--expand")
    assert run.returncode == 0, run.stderr
    states = {listed["ID"]: listed["State"] for listed in json.loads(run.stdout)}
    assert (states[job["ID"]], states[failing["ID"]], states[slow["ID"]]) == ("Success", "Failure", "Success")
    assert set(states.values()) <= {"Success", "Failure"}

    run = _advanced_rest(plugin, "wait", "no-such-job")
    assert run.returncode == 3 and "404" in run.stderr, (run.stdout, run.stderr)


def test_core_job_routes_answer_like_the_core(orthanc_factory):
    # With ServeCoreRoutes off, /jobs is the core's own route: compare ours with it, job by job.
    server = orthanc_factory(config={"AdvancedRest": {"ServeCoreRoutes": False}})
    study = server.post("/tools/create-dicom", data=json.dumps({"Tags": {}})).json()["ParentStudy"]
    ids = [server.post("/studies/%s/archive" % study, data=json.dumps({"Asynchronous": True})).json()["ID"]
           for _ in range(2)]
    for job_id in ids:
        server.get("/advanced-rest/jobs/%s/wait" % job_id, params={"timeout": 30})
    ours, theirs = (server.get(root + "/jobs/%s" % ids[0]).json() for root in ("/advanced-rest", ""))
    ours.pop("Timestamp"), theirs.pop("Timestamp")  # the core gives the time of the request
    assert ours == theirs
    for action in ("pause", "resume", "resubmit", "cancel"):
        theirs = server.post("/jobs/%s/%s" % (ids[0], action)).status_code
        assert server.post("/advanced-rest/jobs/%s/%s" % (ids[0], action)).status_code == theirs, action
    theirs = server.delete("/jobs/%s" % ids[0]).status_code
    assert server.delete("/advanced-rest/jobs/%s" % ids[1]).status_code == theirs
