"""Automatic retries on real Orthanc servers (issue 28): a modality, or a peer Orthanc, that is down when its
transfer runs and comes up later: the core's job shows Retry under {Root}, runs again at its time, and ends
Success once the remote is up, each instance there once; never up: Failure after MaxAttempts; a kill -9 while
it waits; the actions; the JobRetry webhook event; the metrics."""
import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from create_dicom_cases import png_data_uri
from servers import Server, UrlLeg, free_port, until
from webhook_receiver import Receiver

ROOT = "/advanced-rest"
RETRY = {"Types": ["DicomModalityStore", "OrthancPeerStore"], "BackoffSeconds": 1, "MaxBackoffSeconds": 2,
         "MaxAttempts": 30}


def _remote(leg):
    """An Orthanc without the plugin, not started: its ports chosen now, nobody listening on them yet."""
    remote = Server(leg, plugin=False, name="%s-remote" % leg.name, start=False,
                    config={"AuthenticationEnabled": False})  # a peer without credentials (the docker leg's have)
    remote.http_port, remote.dicom_port = free_port(), free_port()
    return remote


def _sender(leg, remote, retries=(RETRY,), **config):
    config = dict({"DicomAet": "SENDER", "DicomModalities": {"pacs": ["REMOTE", "127.0.0.1", remote.dicom_port]},
                   "OrthancPeers": {"peer": ["http://127.0.0.1:%d/" % remote.http_port]},
                   "AdvancedRest": dict({"Retries": list(retries)}, **config.pop("AdvancedRest", {}))}, **config)
    return Server(leg, plugin=True, config=config, name="%s-sender" % leg.name)


@pytest.fixture
def servers(leg):
    if isinstance(leg, UrlLeg):
        pytest.skip("the url leg runs against a given Orthanc: this test starts servers of its own")
    made = []

    def make(kind, *args, **kwargs):
        made.append(_remote(leg) if kind == "remote" else _sender(leg, *args, **kwargs))
        return made[-1]
    yield make
    for server in made:
        server.close()


def _instance(sender):
    answer = sender.post("/tools/create-dicom", json={"Tags": {"PatientName": "Retry^Me"}, "Content": png_data_uri()})
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def _send(sender, instance, route):
    answer = sender.post(route, json={"Resources": [instance], "Asynchronous": True})
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def _shown(sender, job_id):
    """The job as the plugin shows it; {"State": None, "Answer": ...} while it answers something else."""
    answer = sender.get("%s/jobs/%s" % (ROOT, job_id))
    return answer.json() if answer.status_code == 200 else {"State": None, "Answer": (answer.status_code, answer.text)}


def _in_retry(sender, job_id, attempt=None):
    def waiting():
        job = _shown(sender, job_id)
        return job if job["State"] == "Retry" and (attempt is None or job["Attempt"] == attempt) else None
    return until("job %s in Retry" % job_id, waiting, timeout=60)


def _ended(sender, job_id, timeout=120):
    def ended():
        job = _shown(sender, job_id)  # one read: the job as it was when it showed its end
        return job if job["State"] in ("Success", "Failure") else None
    return until("job %s ended" % job_id, ended, timeout=timeout)


def _instances_at(remote):
    return remote.get("/instances").json()


@pytest.mark.parametrize("route", ["/modalities/pacs/store", "/peers/peer/store"], ids=["modality", "peer"])
def test_a_transfer_to_a_remote_that_comes_up_late_is_retried_until_it_succeeds(servers, route):
    remote = servers("remote")
    sender = servers("sender", remote)
    instance = _instance(sender)
    job_id = _send(sender, instance, route)
    waiting = _in_retry(sender, job_id)
    assert waiting["ErrorCode"] == 9 and waiting["Attempt"] >= 1 and waiting["NextAttempt"]
    assert sender.get("/jobs/%s" % job_id).json()["State"] == "Failure", "the core's own path answers as the core"
    assert job_id in [job["ID"] for job in sender.get("/jobs?expand&state=Retry").json()]
    remote.start()
    ended = _ended(sender, job_id)
    assert (ended["State"], ended["ErrorCode"]) == ("Success", 0) and ended["Attempt"] >= 2
    assert len(_instances_at(remote)) == 1, "each instance there once"


def test_a_remote_never_up_fails_for_good_after_max_attempts_with_its_events_and_metrics(servers):
    remote = servers("remote")
    receiver = Receiver()
    try:
        sender = servers("sender", remote, retries=(dict(RETRY, MaxAttempts=3, BackoffSeconds=0.2),),
                         AdvancedRest={"Webhooks": [{"Url": receiver.url, "Events": ["JobRetry", "JobFailure"],
                                                     "Types": ["DicomModalityStore"]}]})
        job_id = _send(sender, _instance(sender), "/modalities/pacs/store")
        waited = sender.get("%s/jobs/%s/wait?timeout=60" % (ROOT, job_id)).json()  # through every retry
        assert (waited["State"], waited["ErrorCode"], waited["Attempt"]) == ("Failure", 9, 3)
        delivered = receiver.wait_for(lambda found: [d["body"]["Event"] for d in found
                                                     if d["body"]["Job"]["ID"] == job_id][-1:] == ["JobFailure"],
                                      timeout=60)
        events = [d["body"]["Event"] for d in delivered if d["body"]["Job"]["ID"] == job_id]
        assert events == ["JobRetry", "JobRetry", "JobFailure"], events
        samples = {(sample.name, sample.labels.get("outcome")): sample.value
                   for family in text_string_to_metric_families(sender.get(ROOT + "/metrics").text)
                   for sample in family.samples if sample.labels.get("type") == "DicomModalityStore"}
        assert {outcome: samples.get(("orthanc_advanced_rest_retries_total", outcome))
                for outcome in ("scheduled", "resubmitted", "gave_up")} == {"scheduled": 2, "resubmitted": 2,
                                                                            "gave_up": 1}
    finally:
        receiver.stop()


def test_a_job_waiting_in_retry_survives_a_kill_and_runs_again_once(servers):
    remote = servers("remote")
    sender = servers("sender", remote, retries=(dict(RETRY, BackoffSeconds=6, MaxBackoffSeconds=6),))
    job_id = _send(sender, _instance(sender), "/modalities/pacs/store")
    waiting = _in_retry(sender, job_id, attempt=1)
    # Orthanc saves a new job within 100 ms of its creation (the Orthanc Book, "Jobs"): a kill before that
    # loses the core's job itself, with or without the plugin (then given up as lost, see the README).
    created = datetime.datetime.strptime(waiting["CreationTime"], "%Y%m%dT%H%M%S.%f").replace(
        tzinfo=datetime.timezone.utc)
    until("the core saved its job", lambda: datetime.datetime.now(datetime.timezone.utc) - created
          > datetime.timedelta(seconds=1), timeout=10)
    sender.kill()
    remote.start()
    sender.start()
    ended = _ended(sender, job_id)
    assert (ended["State"], ended["Attempt"]) == ("Success", 2), ended
    assert len(_instances_at(remote)) == 1


def test_cancel_pause_resume_and_resubmit_of_a_job_in_retry(servers):
    remote = servers("remote")
    sender = servers("sender", remote, retries=(dict(RETRY, BackoffSeconds=300, MaxBackoffSeconds=300),))
    instance = _instance(sender)
    cancelled, held = (_send(sender, instance, "/modalities/pacs/store") for _ in range(2))
    for job_id in (cancelled, held):
        _in_retry(sender, job_id, attempt=1)
    assert sender.delete("%s/jobs/%s" % (ROOT, cancelled)).status_code == 400, "not finished"
    assert sender.post("%s/jobs/%s/cancel" % (ROOT, cancelled)).status_code == 200
    shown = _shown(sender, cancelled)
    assert (shown["State"], shown["ErrorCode"]) == ("Failure", 37)
    assert sender.post("%s/jobs/%s/resume" % (ROOT, held)).status_code == 400, "only a paused job resumes"
    assert sender.post("%s/jobs/%s/pause" % (ROOT, held)).status_code == 200
    assert _shown(sender, held)["State"] == "Paused"
    assert sender.post("%s/jobs/%s/resume" % (ROOT, held)).status_code == 200
    assert _shown(sender, held)["State"] == "Retry"
    remote.start()
    assert sender.post("%s/jobs/%s/resubmit" % (ROOT, held)).status_code == 200  # now, not in 300 s
    assert _ended(sender, held, timeout=60)["State"] == "Success"
    assert len(_instances_at(remote)) == 1
    shown = _shown(sender, cancelled)
    assert (shown["State"], shown["ErrorCode"], shown["Attempt"]) == ("Failure", 37, 1), "it never ran again"
