"""Bounded whatever the state: MaxPendingJobs and MaxPendingBytes count every unfinished plugin job
(Pending, Paused, Running) and the bodies they hold, on one server and across a cluster's replicas."""
import json
import threading
import uuid

import pytest

from test_cluster_engine import Counted, Replica, _until as _until_true
from test_jobs import BIG_PNG, _instances, _until, _wait

SERIES = {"Tags": {}, "Content": [BIG_PNG] * 20, "Asynchronous": True}  # ~20 slow steps: never done before paused


def _body(document):
    return json.dumps(document)


def _post(server, body):
    return server.post("/tools/create-dicom", data=body)


def _submit_and_pause(server, body):
    """The answer to an asynchronous create-dicom; when it is accepted, the job is paused at once."""
    answer = _post(server, body)
    if answer.status_code == 200:
        assert server.post("/jobs/%s/pause" % answer.json()["ID"]).status_code == 200
    return answer


def _refused(answer, status, option):
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["HttpStatus"] == status and "AdvancedRest.%s" % option in error["Details"], error
    if status == 503:
        assert int(answer.headers["Retry-After"]) > 0
    return error["Details"]


def _plugin_jobs(server):
    return server.get("/jobs", params={"expand": "", "type": "CreateDicom"}).json()


def _cancel_all(server, ids):
    for job_id in ids:
        assert server.post("/jobs/%s/cancel" % job_id).status_code == 200
    for job_id in ids:
        job = _wait(server, job_id)
        assert (job["State"], job["ErrorCode"]) == ("Failure", 37), job


# ---- one server ---------------------------------------------------------------------------------------

def test_paused_jobs_count_toward_max_pending_jobs_and_a_cancel_gives_their_room_back(orthanc_factory):
    server = orthanc_factory(config={"ConcurrentJobs": 1, "AdvancedRest": {"MaxPendingJobs": 5}})
    before = _instances(server)
    answers = [_submit_and_pause(server, _body(SERIES)) for _ in range(30)]
    accepted = [answer.json()["ID"] for answer in answers if answer.status_code == 200]
    assert len(accepted) == 5, [answer.status_code for answer in answers]
    for answer in answers[5:]:
        _refused(answer, 503, "MaxPendingJobs")
    assert sorted(job["ID"] for job in _plugin_jobs(server)) == sorted(accepted), "a refused job is not half-created"
    for job_id in accepted:  # the one a worker had begun pauses at its next step
        _until(server, job_id, lambda job: job["State"] == "Paused")

    _cancel_all(server, accepted[:1])
    again = _submit_and_pause(server, _body(SERIES))
    assert again.status_code == 200, again.text
    _refused(_submit_and_pause(server, _body(SERIES)), 503, "MaxPendingJobs")  # full again
    _cancel_all(server, accepted[1:] + [again.json()["ID"]])
    assert _instances(server) == before, "a cancelled job, parked or not, leaves none of its instances"
    assert _wait(server, _post(server, _body({"Tags": {}, "Asynchronous": True})).json()["ID"])["State"] == "Success"


HELD = _body(dict(SERIES, Content=[BIG_PNG] * 8))
MORE = _body(dict(SERIES, Content=[BIG_PNG] * 2))
BUDGET = len(HELD) + len(MORE) - 1  # the two together are one byte too many


def test_a_body_over_max_pending_bytes_is_refused_before_anything_is_stored(orthanc_factory):
    server = orthanc_factory(config={"ConcurrentJobs": 1, "AdvancedRest": {"MaxPendingBytes": BUDGET}})
    held = _submit_and_pause(server, HELD)
    assert held.status_code == 200, held.text
    held_id = held.json()["ID"]
    _until(server, held_id, lambda job: job["State"] == "Paused")
    instances, jobs = _instances(server), server.get("/jobs").json()

    details = _refused(_submit_and_pause(server, MORE), 503, "MaxPendingBytes")
    assert "hold %d bytes" % len(HELD) in details and "%d more" % len(MORE) in details
    assert "(%d)" % BUDGET in details
    too_large = _body(dict(SERIES, Content=[BIG_PNG] * 11))
    assert len(too_large) > BUDGET
    details = _refused(_post(server, too_large), 413, "MaxPendingBytes")  # no wait would make room for it
    assert "The body has %d bytes" % len(too_large) in details
    assert _instances(server) == instances and server.get("/jobs").json() == jobs, "nothing stored, no job"

    _cancel_all(server, [held_id])
    more = _submit_and_pause(server, MORE)
    assert more.status_code == 200, more.text  # room again, once the held job ended
    # Cleanup only: this small job may have finished before its pause (it needs no worker to wait for).
    assert server.post("/jobs/%s/cancel" % more.json()["ID"]).status_code == 200
    assert _wait(server, more.json()["ID"])["State"] in ("Success", "Failure")


# ---- the cluster, on real Orthanc replicas ----------------------------------------------------------------

@pytest.mark.cluster(config={"ConcurrentJobs": 1,
                             "AdvancedRest": {"MaxPendingJobs": 3, "Cluster": {"LeaseSeconds": 3}}})
def test_max_pending_jobs_bounds_the_paused_jobs_of_every_replica_together(cluster):
    a, b = cluster
    answers = [_submit_and_pause(server, _body(SERIES)) for server in (a, b) * 4]
    accepted = [answer.json()["ID"] for answer in answers if answer.status_code == 200]
    assert len(accepted) == 3, [answer.status_code for answer in answers]
    for answer in answers[3:]:
        assert "in the cluster" in _refused(answer, 503, "MaxPendingJobs")
    for job_id in accepted:
        _until(a, job_id, lambda job: job["State"] == "Paused")
    _cancel_all(b, accepted[:1])
    again = _submit_and_pause(a, _body(SERIES))
    assert again.status_code == 200, again.text
    _refused(_submit_and_pause(b, _body(SERIES)), 503, "MaxPendingJobs")
    _cancel_all(a, accepted[1:] + [again.json()["ID"]])


# ---- the cluster's engine on PostgreSQL alone (no leg: runs once) -----------------------------------------

class Sized(Counted):
    """Counted, holding a request of payload["Size"] bytes."""

    def size(self):
        return self._payload["Size"]


@pytest.fixture
def pair(postgres_database):
    """Two replicas (one worker each) on one database, bounded by (max_pending, max_pending_bytes)."""
    started = []

    def make(max_pending, max_pending_bytes):
        for name in ("a", "b"):
            replica = Replica(postgres_database, name, max_pending=max_pending)
            replica.cluster._max_pending_bytes = max_pending_bytes  # as app.py passes it
            started.append(replica.start())
        return started

    yield make
    for replica in started:
        try:
            replica.stop()
        except Exception:
            pass


def _sized(replica, size, steps=20):
    job_id = str(uuid.uuid4())
    payload = {"ID": job_id, "Steps": steps, "Sleep": 0.05, "Size": size}
    return replica.cluster.submit("Test", Sized(payload, replica.name), job_id=job_id)


def _rows(replica):
    return replica.cluster.run("SELECT count(*) FROM advanced_rest.jobs", fetch="one")[0]


def test_the_clusters_byte_budget_sums_the_unfinished_jobs_of_every_replica(pair):
    from advanced_rest.errors import QueueFull, RequestTooLarge
    a, b = pair(100, 1000)
    first = _sized(a, 600)
    a.cluster.act(first, "pause")
    with pytest.raises(QueueFull) as caught:
        _sized(b, 401)
    assert "hold 600 bytes" in caught.value.details and "AdvancedRest.MaxPendingBytes (1000)" in caught.value.details
    with pytest.raises(RequestTooLarge) as caught:
        _sized(b, 1001)
    assert caught.value.http_status == 413
    assert _rows(a) == 1, "a refused job leaves no row"
    second = _sized(b, 400)  # exactly the budget
    b.cluster.act(second, "pause")
    a.cluster.act(first, "cancel")
    _until_true(lambda: a.cluster.get(first)["State"] == "Failure")
    third = _sized(a, 500)
    a.cluster.act(third, "pause")
    with pytest.raises(QueueFull):  # unfinished again, it needs its room back
        b.cluster.act(first, "resubmit")
    assert b.cluster.get(first)["State"] == "Failure"
    for job_id in (second, third):
        b.cluster.act(job_id, "cancel")


def test_two_replicas_submitting_at_once_never_both_take_the_last_room(pair):
    from advanced_rest.errors import QueueFull
    a, b = pair(4, None)
    outcomes, start = [], threading.Barrier(8)

    def submit(replica):
        start.wait(10)
        try:
            job_id = _sized(replica, 0)
            replica.cluster.act(job_id, "pause")
            outcomes.append(job_id)
        except QueueFull:
            outcomes.append(None)

    threads = [threading.Thread(target=submit, args=(replica,)) for replica in (a, b) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    accepted = [job_id for job_id in outcomes if job_id]
    assert len(outcomes) == 8 and len(accepted) == 4, outcomes
    unfinished = a.cluster.run("SELECT count(*) FROM advanced_rest.jobs WHERE state <> ALL(%s)",
                               (["Success", "Failure"],), fetch="one")[0]
    assert unfinished == 4
    for job_id in accepted:
        a.cluster.act(job_id, "cancel")
