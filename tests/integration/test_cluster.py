"""Two Orthanc replicas with the plugin on one PostgreSQL: one jobs view, actions from anywhere,
takeover of a dead replica's jobs, metrics summed once (see tests/integration/cluster.py)."""
import contextlib
import json
import os
import signal
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_jobs import BIG_PNG, _instances, _submit, _until, _wait, _wait_after_restart

ROOT = "/advanced-rest"
LEASE = 3  # seconds: a dead replica's jobs are taken over this long after its last renewal

pytestmark = pytest.mark.cluster(config={"AdvancedRest": {"Cluster": {"LeaseSeconds": LEASE}},
                                         "ConcurrentJobs": 1, "JobsHistorySize": 50})


def test_a_job_submitted_on_one_replica_is_visible_and_awaited_on_the_other(cluster):
    a, b = cluster
    job_id = _submit(a, {"Tags": {"PatientName": "Cluster^One"}})
    seen = b.get("/jobs/%s" % job_id)
    assert seen.status_code == 200 and seen.json()["Type"] == "CreateDicom"
    assert job_id in b.get("/jobs").json()
    job = _wait(b, job_id)
    assert job["State"] == "Success" and job["Replica"] in ("replica-a", "replica-b")
    assert b.get(job["Content"]["Path"]).status_code == 200  # one storage, one index
    assert [j["ID"] for j in b.get("/jobs", params={"expand": "", "type": "CreateDicom"}).json()] == [job_id]


def test_a_series_cancelled_from_the_other_replica_leaves_nothing(cluster):
    a, b = cluster
    before = _instances(a)
    job_id = _submit(a, {"Tags": {}, "Content": [BIG_PNG] * 40})
    running = _until(a, job_id, lambda j: j["State"] == "Running" and j["Progress"] > 0)
    other = b if running["Replica"] == "replica-a" else a
    assert other.post("/jobs/%s/cancel" % job_id).status_code == 200
    job = _wait(other, job_id)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37)
    assert _instances(a) == before


def test_pause_and_resume_from_the_other_replica_take_effect_at_the_next_step(cluster):
    a, b = cluster
    job_id = _submit(a, {"Tags": {}, "Content": [BIG_PNG] * 40})
    running = _until(a, job_id, lambda j: j["State"] == "Running")
    other = b if running["Replica"] == "replica-a" else a
    assert other.post("/jobs/%s/pause" % job_id).status_code == 200
    paused = _until(other, job_id, lambda j: j["State"] != "Running", timeout=10)
    assert paused["State"] == "Paused", paused
    # A resume sent to any replica once Paused shows is accepted (decided against the row).
    assert other.post("/jobs/%s/resume" % job_id).status_code == 200
    assert _wait(other, job_id)["State"] == "Success"


def test_kill_9_of_the_replica_running_a_series_and_the_other_finishes_it_once(cluster):
    a, b = cluster
    before = _instances(a)
    job_id = _submit(a, {"Tags": {}, "Content": [BIG_PNG] * 40})
    running = _until(a, job_id, lambda j: j["State"] == "Running" and j["Progress"] >= 10)
    victim, survivor = (a, b) if running["Replica"] == "replica-a" else (b, a)
    victim.kill()
    job = _wait_after_restart(survivor, job_id, timeout=120)
    assert job["State"] == "Success" and job["Replica"] == survivor.identifier, job
    created = _instances(survivor) - before
    assert len(created) == 40
    assert len(survivor.get("/series/%s/instances" % job["Content"]["ID"]).json()) == 40


def _successes(server, path="/advanced-rest/metrics"):
    """orthanc_jobs{type="CreateDicom",state="Success"} as one scrape of `server` reads it (0: none)."""
    total = 0
    for family in text_string_to_metric_families(server.get(path).text):
        if family.name == "orthanc_jobs":
            total += sum(sample.value for sample in family.samples
                         if sample.labels == {"type": "CreateDicom", "state": "Success"})
    return total


def _successes_summed(servers):
    return sum(_successes(server) for server in servers)


def test_gauges_summed_over_the_replicas_count_each_job_once(cluster):
    a, b = cluster
    ids = [_submit(server, {"Tags": {}}) for server in (a, b, a, b, a)]
    for job_id in ids:
        _wait(a, job_id)
    assert _successes_summed(cluster) == len(ids)


def test_after_a_replica_died_the_live_ones_still_count_every_job_once(cluster):
    a, b = cluster
    ids = [_submit(server, {"Tags": {}}) for server in (a, b, a, b)]
    for job_id in ids:
        _wait(a, job_id)
    for victim, survivor in ((a, b), (b, a)):  # whichever reported the gauges, the other takes over
        victim.kill()
        _sessions_ended(cluster, victim)
        assert _successes_summed([survivor]) == len(ids), "at its very next scrape"
        listed = [job for job in survivor.get("/jobs", params={"expand": "", "type": "CreateDicom"}).json()
                  if job["State"] == "Success"]
        assert len(listed) == len(ids)
        victim.start()
        assert _successes_summed(cluster) == len(ids), "as soon as it answers"


def _sessions_ended(cluster, server, timeout=5.0):
    """Wait until PostgreSQL ended the plugin's sessions of `server`, killed (it sees their sockets close within
    milliseconds: far less than the lease); from then on the others know it is dead."""
    deadline = time.monotonic() + timeout
    while cluster.postgres.query("SELECT 1 FROM pg_stat_activity WHERE application_name LIKE %s",
                                 ("advanced-rest/%s%%" % server.identifier,)):
        assert time.monotonic() < deadline, "the sessions of a killed replica outlived it"
        time.sleep(0.01)


# A lease far longer than the test: the role passes on with the identity session, not by time.
@pytest.mark.cluster(replicas=3, config={"AdvancedRest": {"Cluster": {"LeaseSeconds": 120}}, "JobsHistorySize": 50})
def test_right_after_the_reporting_replica_is_killed_the_next_scrapes_of_the_others_count_every_job(cluster):
    a, b, c = cluster
    ids = [_submit(server, {"Tags": {}}) for server in (a, b, c, b)]
    for job_id in ids:
        _wait(a, job_id)
    assert [_successes(server) for server in cluster] == [4, 0, 0], "one reporter: the smallest identifier"
    a.kill()
    _sessions_ended(cluster, a)
    assert [_successes(b), _successes(c)] == [4, 0]
    b.kill()
    _sessions_ended(cluster, b)
    assert _successes(c) == 4
    # The headline gauges of the core's route come from the same source, at the same scrape.
    text = c.get("/tools/metrics-prometheus").text
    assert "orthanc_advanced_rest_jobs_success 4.0" in text.splitlines()
    assert _successes(c, "/tools/metrics-prometheus") == 4
    b.start()  # b is the smallest live identifier again: it reports, c no more
    assert [_successes(b), _successes(c)] == [4, 0]


def test_a_restarted_replica_keeps_the_clusters_history(cluster):
    a, b = cluster
    job_id = _submit(a, {"Tags": {}})
    done = _wait(a, job_id)
    a.restart()
    assert a.get("/jobs/%s" % job_id).json()["State"] == "Success"
    assert b.get("/jobs/%s" % job_id).json()["Content"] == done["Content"]
    assert _wait(a, _submit(a, {"Tags": {}}))["State"] == "Success"


def test_the_change_feed_is_the_clusters(cluster):
    a, b = cluster
    last = b.get("/advanced-rest/jobs/changes").json()["Last"]
    job_id = _submit(a, {"Tags": {}})
    _wait(a, job_id)
    answer = b.get("/advanced-rest/jobs/changes", params={"since": last, "timeout": 5}).json()
    states = [change["State"] for change in answer["Changes"] if change["ID"] == job_id]
    assert states[-1] == "Success"


def test_a_second_replica_with_an_identity_in_use_refuses_to_start_with_one_log_line(cluster):
    a, _ = cluster
    twin = cluster.add_replica(identifier=a.identifier)
    assert twin.get("/system").status_code == 200, "Orthanc's own API keeps working"
    assert twin.get("/advanced-rest/system").status_code == 404
    lines = [line for line in twin.log_text().splitlines() if "already uses DatabaseServerIdentifier" in line]
    assert len(lines) == 1


def test_a_core_job_of_one_replica_is_listed_awaited_and_acted_on_by_the_other(cluster):
    a, b = cluster
    study = a.post("/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "Core^Cluster"}})).json()
    job_id = a.post("/studies/%s/archive" % study["ParentStudy"], data=json.dumps({"Asynchronous": True})).json()["ID"]
    assert _wait(a, job_id)["State"] == "Success"
    listed = _until_listed(b, job_id)
    assert listed["Replica"] == "replica-a" and listed["Type"] == "Archive"
    assert job_id in b.get("/jobs").json()
    assert _wait(b, job_id)["State"] == "Success"
    # /jobs/{id} of a core job is the core's own route (its local jobs only); {Root} serves every replica's.
    assert b.get("/jobs/%s" % job_id).status_code == 404
    assert b.get(ROOT + "/jobs/%s" % job_id).json()["Replica"] == "replica-a"
    assert b.post(ROOT + "/jobs/%s/pause" % job_id).status_code == 200  # carried out by replica-a's core
    refused = b.post(ROOT + "/jobs/%s/resume" % job_id)
    assert refused.status_code == 400 and "replica-a" in refused.json()["Details"], refused.text
    b_own = b.post("/studies/%s/archive" % study["ParentStudy"], data=json.dumps({"Asynchronous": True})).json()["ID"]
    _wait(b, b_own)
    assert [j["ID"] for j in b.get("/jobs", params={"expand": "", "type": "Archive"}).json()].count(b_own) == 1


def _until_listed(server, job_id, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in server.get("/jobs", params={"expand": ""}).json():
            if job["ID"] == job_id:
                return job
        time.sleep(0.1)
    raise AssertionError("core job %s never listed on %s" % (job_id, server.name))


def test_a_core_job_of_a_dead_replica_is_no_longer_listed(cluster):
    a, b = cluster
    study = a.post("/tools/create-dicom", data=json.dumps({"Tags": {}})).json()
    job_id = a.post("/studies/%s/archive" % study["ParentStudy"], data=json.dumps({"Asynchronous": True})).json()["ID"]
    _until_listed(b, job_id)
    a.kill()
    deadline = time.monotonic() + LEASE + 10
    while time.monotonic() < deadline and b.get(ROOT + "/jobs/%s" % job_id).status_code == 200:
        time.sleep(0.2)
    assert b.get(ROOT + "/jobs/%s" % job_id).status_code == 404
    assert b.post(ROOT + "/jobs/%s/pause" % job_id).status_code in (400, 404)


@pytest.mark.cluster(replicas=0)
def test_a_single_server_switched_to_the_cluster_keeps_its_saved_jobs(cluster):
    single = cluster.add_replica(identifier="replica-a", config={
        "ConcurrentJobs": 1, "AdvancedRest": {"Cluster": {"Enabled": False}}})
    done = _wait(single, _submit(single, {"Tags": {"PatientName": "Before^Cluster"}}))
    paused = _submit(single, {"Tags": {}, "Content": [BIG_PNG] * 10})
    single.post("/jobs/%s/pause" % paused)
    _until(single, paused, lambda j: j["State"] == "Paused")
    single.stop()
    single.extra_config["AdvancedRest"] = {"Cluster": {"Enabled": True, "LeaseSeconds": LEASE}}
    single.start()
    b = cluster.add_replica()
    assert b.get("/jobs/%s" % done["ID"]).json()["State"] == "Success"
    assert b.get("/jobs/%s" % paused).json()["State"] == "Paused"
    assert b.post("/jobs/%s/resume" % paused).status_code == 200
    job = _wait(b, paused)
    assert job["State"] == "Success" and len(b.get("/series/%s/instances" % job["Content"]["ID"]).json()) == 10
    single.restart()  # migrated once: nothing is moved again
    assert [j for j in b.get("/jobs").json() if j in (done["ID"], paused)] == [done["ID"], paused]


@pytest.mark.cluster(replicas=1)
def test_a_replica_without_an_explicit_identifier_refuses_the_cluster_with_one_log_line(cluster):
    anonymous = cluster.add_replica(identifier="replica-x", config={"DatabaseServerIdentifier": None})
    assert anonymous.get("/system").status_code == 200, "Orthanc's own API keeps working"
    assert anonymous.get("/advanced-rest/system").status_code == 404
    lines = [line for line in anonymous.log_text().splitlines() if "DatabaseServerIdentifier set explicitly" in line]
    assert len(lines) == 1


# -- a frozen owner (SIGSTOP: a stalled VM, a deadlocked process, a partition that keeps TCP open) ----

def _freeze(server):
    """SIGSTOP to Orthanc (in a container: its PID 1, which a SIGKILL can still end, unlike `docker pause`)."""
    if getattr(server, "container", None) is not None:
        server.container.kill(signal="SIGSTOP")
    else:
        os.kill(server.process.pid, signal.SIGSTOP)


def _thaw(server):
    if not server.running():  # killed while frozen
        return
    if getattr(server, "container", None) is not None:
        server.container.kill(signal="SIGCONT")
    else:
        os.kill(server.process.pid, signal.SIGCONT)


@contextlib.contextmanager
def _frozen(server):
    _freeze(server)
    try:
        yield
    finally:
        _thaw(server)


def _series_running(cluster, patient, count):
    """(job id, the replica running it, the other, the instances before) of a series submitted on the
    first replica, once a tenth of it is stored."""
    a, b = cluster
    before = _instances(a)
    job_id = _submit(a, {"Tags": {"PatientName": patient}, "Content": [BIG_PNG] * count})
    running = _until(a, job_id, lambda j: j["State"] == "Running" and j["Progress"] >= 10)
    owner, other = (a, b) if running["Replica"] == "replica-a" else (b, a)
    return job_id, owner, other, before


# While the owner is frozen, Orthanc's own index (its PostgreSQL plugin, not the plugin's connections)
# may hold row locks of the series it was storing into: a store or a delete into that series by another
# replica waits for them, which no replica can bound (plain Orthanc behaves alike). These tests wait
# for the takeover while the owner is frozen, then end or thaw it, and check what follows.

def test_a_cancel_sent_while_the_owner_is_frozen_is_answered_kept_and_carried_out_by_the_new_owner(cluster):
    job_id, owner, other, before = _series_running(cluster, "Frozen^Owner", 40)
    with _frozen(owner):
        began = time.monotonic()
        answer = other.post("/jobs/%s/cancel" % job_id, timeout=30)
        assert answer.status_code == 200, answer.text
        answered_in = time.monotonic() - began
        # No job stays Running without a live owner: the frozen one loses it after its lease.
        job = _until(other, job_id, lambda j: j["State"] != "Running", timeout=8 * LEASE + 60)
        assert job["State"] in ("Pending", "Failure"), job
        owner.kill()  # then the frozen owner dies: the acknowledged cancel is not lost
    assert answered_in < 30  # not a speed figure: the request did not hang on the frozen owner
    job = _wait(other, job_id)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37), job
    assert _instances(other) - before == set(), "a cancelled job leaves nothing"
    owner.start()
    assert _wait(owner, job_id)["State"] == "Failure"
    assert _instances(owner) - before == set()


def test_a_frozen_owner_woken_after_the_takeover_stores_nothing_more_and_removes_nothing(cluster):
    job_id, owner, other, before = _series_running(cluster, "Woken^Owner", 30)
    _freeze(owner)
    try:  # the other replica took the job over and started it: the frozen owner's claim is gone
        _until(other, job_id, lambda j: j["State"] == "Running" and j["Replica"] == other.identifier,
               timeout=8 * LEASE + 60)
    finally:
        _thaw(owner)
    job = _until(other, job_id, lambda j: j["State"] == "Success", timeout=120)
    assert job["Replica"] == other.identifier
    lost = _until_logged(owner, lambda line: "lost its claim" in line and job_id in line)
    assert len(lost) == 1, "the woken owner says once that it stopped"
    created = _instances(other) - before
    assert len(created) == 30
    assert len(other.get("/series/%s/instances" % job["Content"]["ID"]).json()) == 30
    assert other.get("/jobs/%s" % job_id).json()["State"] == "Success"


def _until_logged(server, wanted, timeout=60):
    """The lines of server's log that `wanted` accepts, once there is one (a woken owner reaches its next
    step, finds its claim gone and says so; on a loaded machine that can take a while)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.log_text().splitlines() if wanted(line)]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)
