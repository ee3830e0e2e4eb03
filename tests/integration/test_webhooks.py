"""Webhooks on real servers: signed deliveries of core and plugin jobs, in order per job, retried while
the receiver is down or failing, unaffected by a hanging receiver, kept across kill -9; in a cluster,
delivered by one replica and taken over when that replica dies mid-delivery."""
import base64
import functools
import http.server
import json
import secrets
import threading
import time

import pytest

from create_dicom_cases import png_data_uri
from test_cluster import _frozen
from test_jobs import _submit, _wait, _wait_after_restart
from servers import until
from webhook_receiver import SECRET, Receiver, events_of

ALL_EVENTS = ["JobSubmitted", "JobRunning", "JobPaused", "JobSuccess", "JobFailure", "JobDeleted"]
ROOT = "/advanced-rest"


def _endpoint(receiver, **options):
    return dict({"Url": receiver.url, "Secret": SECRET, "Events": ALL_EVENTS, "BackoffSeconds": 0.5,
                 "MaxBackoffSeconds": 2}, **options)


def _server(orthanc_factory, *endpoints, **options):
    return orthanc_factory(config={"AdvancedRest": dict({"Webhooks": list(endpoints)}, **options)})


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def _plugin_job(server, images=1):
    return _submit(server, {"Tags": {"PatientName": "Webhook^Test"}, "Content": [png_data_uri("RGB")] * images})


def _core_job(server):
    stored = server.post("/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "Webhook^Core"},
                                                                 "Content": png_data_uri("RGB")})).json()
    answer = server.post("/studies/%s/archive" % stored["ParentStudy"], data=json.dumps({"Asynchronous": True}))
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def _deliveries(server, **params):
    answer = server.get(ROOT + "/webhooks/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["Deliveries"]


def _written_delivered(server, events, **params):
    """The server's deliveries (`params` filter them) by EventId, once each of `events` is listed
    Delivered: the sender writes that when it has the receiver's answer, a moment after the
    receiver has the event (seen red when read at once)."""
    def written():
        listed = {d["EventId"]: d for d in _deliveries(server, **params)}
        return listed if all(event in listed and listed[event]["State"] == "Delivered" for event in events) else None
    return _until("each delivery written Delivered", written)


_until = functools.partial(until, timeout=60, every=0.1)


def test_events_of_core_and_plugin_jobs_arrive_signed_and_in_order(orthanc_factory, receiver):
    server = _server(orthanc_factory, _endpoint(receiver))
    plugin_job = _plugin_job(server, images=3)
    core_job = _core_job(server)
    assert _wait(server, plugin_job)["State"] == "Success"
    assert _wait(server, core_job)["State"] == "Success"
    assert server.delete("/jobs/%s" % plugin_job).status_code == 200
    delivered = receiver.wait_for(lambda found: "JobDeleted" in events_of(found, plugin_job)
                                  and "JobSuccess" in events_of(found, core_job), what="both jobs' events")
    assert events_of(delivered, plugin_job) == ["JobSubmitted", "JobRunning", "JobSuccess", "JobDeleted"]
    core_events = events_of(delivered, core_job)
    assert core_events[0] == "JobSubmitted" and core_events[-1] == "JobSuccess", core_events
    assert all(item["verified"] for item in receiver.received), "every delivery verifies with standardwebhooks"
    success = next(item["body"] for item in delivered if item["body"]["Event"] == "JobSuccess"
                   and item["body"]["Job"]["ID"] == core_job)
    assert success["Job"]["Type"] == "Archive" and success["Job"]["State"] == "Success"
    assert isinstance(success["Change"], int) and "Replica" not in success
    listed = _written_delivered(server, {item["id"] for item in delivered}, state="delivered")
    assert all(d["Attempts"] == 1 and d["LastStatus"] == 200 for d in listed.values())


def test_types_and_events_choose_what_an_endpoint_is_sent(orthanc_factory, receiver):
    other = Receiver()
    try:
        server = _server(orthanc_factory, _endpoint(receiver, Name="plugin-ends", Types=["CreateDicom"],
                                                    Events=["JobSuccess", "JobFailure"]),
                         _endpoint(other, Name="everything"))
        plugin_job, core_job = _plugin_job(server), _core_job(server)
        _wait(server, plugin_job), _wait(server, core_job)
        other.wait_for(lambda found: "JobSuccess" in events_of(found, core_job)
                       and "JobSuccess" in events_of(found, plugin_job))
        assert [item["body"]["Event"] for item in receiver.delivered()] == ["JobSuccess"]
        assert receiver.delivered()[0]["body"]["Job"]["ID"] == plugin_job
    finally:
        other.close()


def test_a_receiver_down_for_30_seconds_gets_everything_once_up(orthanc_factory, receiver):
    server = _server(orthanc_factory, _endpoint(receiver, MaxBackoffSeconds=5))
    receiver.stop()
    jobs = [_plugin_job(server) for _ in range(3)]
    for job in jobs:
        assert _wait(server, job)["State"] == "Success"
    _until("attempts refused", lambda: any(d["Attempts"] >= 2 and d["LastError"] == "connection refused"
                                           for d in _deliveries(server, state="pending")))
    time.sleep(30 - 5)
    assert server.get("/system").status_code == 200
    receiver.start()
    delivered = receiver.wait_for(lambda found: all("JobSuccess" in events_of(found, job) for job in jobs),
                                  timeout=60)
    for job in jobs:
        assert events_of(delivered, job) == ["JobSubmitted", "JobRunning", "JobSuccess"]
    _until("nothing pending", lambda: not _deliveries(server, state="pending"))


def test_a_receiver_answering_500_three_times_gets_it_on_the_fourth(orthanc_factory, receiver):
    server = _server(orthanc_factory, _endpoint(receiver, Events=["JobSuccess"]))
    receiver.answers.extend([500, 500, 500])
    job = _plugin_job(server)
    _wait(server, job)
    delivered = receiver.wait_for(lambda found: events_of(found, job) == ["JobSuccess"], timeout=30)
    ids = [item["id"] for item in receiver.received]
    assert len(ids) == 4 and len(set(ids)) == 1, "four attempts of one event, one webhook-id"
    assert [item["status"] for item in receiver.received] == [500, 500, 500, 200]
    listed = _until("delivered", lambda: _deliveries(server, state="delivered"))
    assert (listed[0]["Attempts"], listed[0]["LastStatus"], listed[0]["EventId"]) == (4, 200, delivered[0]["id"])


def test_a_hanging_receiver_delays_neither_other_endpoints_nor_routes(orthanc_factory, receiver):
    stuck = Receiver()
    stuck.hang = 120
    try:
        server = _server(orthanc_factory, _endpoint(stuck, Name="stuck", TimeoutSeconds=60),
                         _endpoint(receiver, Name="fine"))
        jobs = [_plugin_job(server) for _ in range(3)]
        for job in jobs:
            assert _wait(server, job)["State"] == "Success"
        receiver.wait_for(lambda found: all("JobSuccess" in events_of(found, job) for job in jobs), timeout=30)
        for path in ("/system", "/jobs", ROOT + "/webhooks/deliveries", ROOT + "/metrics"):
            began = time.monotonic()
            assert server.get(path, timeout=30).status_code == 200
            assert time.monotonic() - began < 5, "%s waited for the hanging receiver" % path
        test = server.post(ROOT + "/webhooks/test", data=json.dumps({"Endpoint": "fine"})).json()
        assert test["Delivered"] is True and test["Status"] == 200

        # "fine"'s deliveries are written Delivered a moment after its receiver has them; "stuck"'s stay.
        def only_stuck_pending():
            pending = _deliveries(server, state="pending")
            return pending and all(d["Endpoint"] == "stuck" for d in pending)
        _until("the stuck endpoint's deliveries, and only them, pending", only_stuck_pending)
    finally:
        stuck.close()


def test_pending_deliveries_survive_kill_9(orthanc_factory, receiver):
    server = _server(orthanc_factory, _endpoint(receiver, Events=["JobRunning", "JobSuccess"], MaxBackoffSeconds=1))
    receiver.stop()
    jobs = [_plugin_job(server) for _ in range(2)]
    for job in jobs:
        _wait(server, job)

    def attempted():
        pending = _deliveries(server, state="pending")
        # in order per job: each JobSuccess waits behind its job's JobRunning, which is being retried
        return pending if len(pending) == 4 and sum(1 for d in pending if d["Attempts"]) == 2 else None
    ids = {d["EventId"] for d in _until("the four pending, each job's first attempted", attempted)}
    server.kill()
    receiver.start()
    server.start()
    delivered = receiver.wait_for(lambda found: ids <= {item["id"] for item in found})
    assert all(item["verified"] for item in receiver.received)
    # Anything else is a new event: a job whose end was not saved yet (within a second) ran again after
    # the restart, and says so with a JobRunning of its own before its JobSuccess.
    for item in delivered:
        if item["id"] not in ids:
            job = item["body"]["Job"]["ID"]
            again = [d["body"]["Event"] for d in delivered if d["id"] not in ids and d["body"]["Job"]["ID"] == job]
            assert again[:1] == ["JobRunning"], ("a new event without a new run", item["body"])


def test_every_saved_success_keeps_its_event_across_kill_9(orthanc_factory, receiver):
    """Issue 27: a job's events are durable no later than the change that made them. Three jobs end at
    once, kill -9 right after the last shows Success, restart: every job shows Success (one whose end was
    not saved ran again) and the receiver gets a JobSuccess of each. Before the fix the jobs' index could
    be saved before the outbox holding their events: 4 of 15 jobs lost their JobSuccess on bookworm."""
    server = orthanc_factory(config={"ConcurrentJobs": 3, "AdvancedRest": {
        "Webhooks": [_endpoint(receiver, Events=["JobSuccess"])]}})
    for _ in range(5):
        jobs = [_plugin_job(server) for _ in range(3)]
        for job in jobs:
            assert _wait(server, job)["State"] == "Success"
        server.kill()
        server.start()
        for job in jobs:
            assert _wait_after_restart(server, job)["State"] == "Success"
        receiver.wait_for(lambda found: all("JobSuccess" in events_of(found, job) for job in jobs), timeout=30,
                          what="a JobSuccess of each of %s" % jobs)


def test_a_failed_delivery_is_listed_and_can_be_redelivered(orthanc_factory, receiver):
    server = _server(orthanc_factory, _endpoint(receiver, Events=["JobSuccess"], MaxAttempts=2))
    receiver.answers.extend([503, 503])
    job = _plugin_job(server)
    _wait(server, job)
    failed = _until("failed", lambda: _deliveries(server, state="failed", job=job))
    assert (failed[0]["Attempts"], failed[0]["LastStatus"], failed[0]["LastError"]) == (2, 503, "HTTP 503")
    assert receiver.delivered() == []
    again = server.post(ROOT + "/webhooks/deliveries/%s/redeliver" % failed[0]["ID"])
    assert again.status_code == 200, again.text
    delivered = receiver.wait_for(lambda found: len(found) == 1, timeout=30)
    assert delivered[0]["id"] == failed[0]["EventId"]
    assert server.post(ROOT + "/webhooks/deliveries/999999/redeliver").status_code == 404


def test_the_test_route_and_a_full_outbox(orthanc_factory, receiver):
    server = _server(orthanc_factory, _endpoint(receiver, Name="ris", Events=["JobSuccess"]),
                     MaxPendingDeliveries=1)
    answer = server.post(ROOT + "/webhooks/test", data=json.dumps({"Endpoint": "ris"})).json()
    assert answer["Delivered"] is True and receiver.delivered()[0]["body"]["Event"] == "Test"
    assert receiver.delivered()[0]["verified"]
    assert server.post(ROOT + "/webhooks/test", data=json.dumps({"Endpoint": "nope"})).status_code == 404
    endpoints = server.get(ROOT + "/webhooks").json()
    assert endpoints[0]["Name"] == "ris" and endpoints[0]["Signed"] is True and "Secret" not in endpoints[0]
    receiver.stop()
    jobs = [_plugin_job(server) for _ in range(3)]
    assert all(_wait(server, job)["State"] == "Success" for job in jobs), "a full outbox holds no job up"
    def refused():  # reported within a second, out of the feed's lock
        metrics = server.get(ROOT + "/metrics").text
        found = [line for line in metrics.splitlines()
                 if line.startswith('orthanc_advanced_rest_webhook_events_refused_total{endpoint="ris"}')]
        return metrics if found and float(found[0].split()[-1]) == 2.0 else None
    metrics = _until("two refusals counted", refused, timeout=30)
    # Logged right after it is counted; a container's log reaches the test through Docker a moment later.
    _until("the refusal logged", lambda: "AdvancedRest.MaxPendingDeliveries" in server.log_text(), timeout=10)
    assert "orthanc_advanced_rest_webhook_outbox_pending 1.0" in metrics


def test_a_bad_webhook_configuration_is_named_and_orthanc_keeps_running(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"Webhooks": [
        {"Url": "ftp://example.org/", "Events": ["JobExploded"], "Secret": "not base64!"}]}})
    assert server.get("/system").status_code == 200
    log = server.log_text()
    for name in ("AdvancedRest.Webhooks[0].Url", "AdvancedRest.Webhooks[0].Events", "AdvancedRest.Webhooks[0].Secret"):
        assert name in log
    assert "not base64!" not in log, "a secret is never logged"


class _PathRecorder:
    """A receiver that records where each POST went (path and query) and its Authorization header; it
    answers `answers` first, then 200."""

    def __init__(self, answers=()):
        self.seen, self.answers = [], list(answers)
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = recorder.answers.pop(0) if recorder.answers else 200
                recorder.seen.append((self.path, self.headers.get("Authorization"), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_an_unnamed_endpoint_shows_its_scheme_host_and_port_only(orthanc_factory):
    token = "tok" + secrets.token_hex(8)
    recorder = _PathRecorder(answers=[500])  # a failed attempt first: logged (INFO) with the endpoint's name
    try:
        url = "http://hook:%s@127.0.0.1:%d/in/%s?token=%s" % (token, recorder.port, token, token)
        server = orthanc_factory(args=("--verbose",), config={"AdvancedRest": {"Webhooks": [
            {"Url": url, "Events": ["JobSuccess"], "BackoffSeconds": 0.5, "MaxBackoffSeconds": 1}]}})
        job = _plugin_job(server)
        assert _wait(server, job)["State"] == "Success"
        delivered = _until("the delivery written Delivered", lambda: _deliveries(server, state="delivered"))
        assert [status for _, _, status in recorder.seen] == [500, 200]
        path, authorization, _ = recorder.seen[-1]
        assert path == "/in/%s?token=%s" % (token, token), "the delivery went to the whole URL"
        assert authorization == "Basic " + base64.b64encode(("hook:%s" % token).encode()).decode()
        origin = "http://127.0.0.1:%d" % recorder.port
        assert delivered[0]["Endpoint"] == origin and delivered[0]["Attempts"] == 2
        endpoints = server.get(ROOT + "/webhooks").json()
        assert [(e["Name"], e["Url"]) for e in endpoints] == [(origin, origin)]
        shown = {"%s/webhooks" % ROOT: server.get(ROOT + "/webhooks").text,
                 "%s/webhooks/deliveries" % ROOT: server.get(ROOT + "/webhooks/deliveries").text,
                 "%s/metrics" % ROOT: server.get(ROOT + "/metrics").text,
                 "/tools/metrics-prometheus": server.get("/tools/metrics-prometheus").text,
                 "Orthanc's log": server.log_text()}
        assert 'endpoint="%s"' % origin in shown["/tools/metrics-prometheus"]
        assert "Webhook %s: delivery" % origin in shown["Orthanc's log"], "the failed attempt was logged"
        for where, text in shown.items():
            lines = [line for line in text.splitlines() if token in line]
            assert lines == [], "the URL's secret in %s: %s" % (where, lines)
    finally:
        recorder.close()


# ---- the cluster -------------------------------------------------------------------------------------

CLUSTER = {"AdvancedRest": {"Cluster": {"LeaseSeconds": 3}}, "ConcurrentJobs": 1, "JobsHistorySize": 50}


def _cluster_receiver(cluster):
    """A receiver the replicas reach: on loopback, or on the docker leg at the gateway of their network."""
    if cluster.network is None:
        return Receiver()
    cluster.network.reload()
    return Receiver(host=cluster.network.attrs["IPAM"]["Config"][0]["Gateway"])


@pytest.fixture
def cluster_receiver(cluster):
    made = _cluster_receiver(cluster)
    yield made
    made.close()


def _replicas(cluster, receiver, count=2, **options):
    config = {"AdvancedRest": {"Webhooks": [_endpoint(receiver, **options)]}}
    return [cluster.add_replica(config=config) for _ in range(count)]


@pytest.mark.cluster(replicas=0, config=CLUSTER)
def test_a_cluster_delivers_each_event_once_from_one_replica(cluster, cluster_receiver):
    a, b = _replicas(cluster, cluster_receiver)
    jobs = [_plugin_job(server) for server in (a, b, a, b)]
    core_job = _core_job(b)
    # b publishes its core jobs every second: a knows of this one only from then on.
    _until("replica-a listing replica-b's core job",
           lambda: a.get(ROOT + "/jobs/%s" % core_job).status_code == 200, timeout=30)
    for job in jobs + [core_job]:
        assert _wait(a, job)["State"] == "Success"
    delivered = cluster_receiver.wait_for(lambda found: all("JobSuccess" in events_of(found, job)
                                                            for job in jobs + [core_job]))
    for job in jobs:
        assert events_of(delivered, job) == ["JobSubmitted", "JobRunning", "JobSuccess"], job
    assert events_of(delivered, core_job)[-1] == "JobSuccess"
    assert all(item["verified"] for item in cluster_receiver.received)
    assert len(cluster_receiver.received) == len({item["id"] for item in cluster_receiver.received}), \
        "no event was sent twice"
    assert {item["body"]["Replica"] for item in delivered} <= {"replica-a", "replica-b"}
    core_success = [item for item in delivered if item["body"]["Job"]["ID"] == core_job
                    and item["body"]["Event"] == "JobSuccess"][0]
    assert core_success["body"]["Replica"] == "replica-b", "a core job's event names the replica that ran it"
    on_a = {event: d["State"] for event, d in
            _written_delivered(a, {item["id"] for item in cluster_receiver.received}).items()}
    assert on_a == {d["EventId"]: d["State"] for d in _deliveries(b)}, "one outbox, seen from either replica"


def _first_attempt_held(cluster, receiver, timeout):
    """(job, its delivery, the replica sending it, the other): a job's JobSuccess held by the receiver."""
    a, b = _replicas(cluster, receiver, Events=["JobSuccess"], TimeoutSeconds=timeout)
    receiver.hang = 300
    job = _plugin_job(a)
    _wait(a, job)
    _until("the receiver holding the first attempt", lambda: receiver.received)
    sending = _deliveries(a)[0]
    assert receiver.received[0]["id"] == sending["EventId"] and sending["SentBy"], sending
    return (job, sending) + ((a, b) if sending["SentBy"] == "replica-a" else (b, a))


@pytest.mark.cluster(replicas=0, config=CLUSTER)
def test_a_replica_killed_mid_delivery_hands_it_to_another(cluster, cluster_receiver):
    job, sending, sender, survivor = _first_attempt_held(cluster, cluster_receiver, timeout=4)
    sender.kill()
    cluster_receiver.hang = 0
    delivered = cluster_receiver.wait_for(lambda found: events_of(found, job) == ["JobSuccess"], timeout=60)
    assert delivered[0]["id"] == sending["EventId"], "the same event, with its webhook-id"
    listed = _until("delivered", lambda: _deliveries(survivor, state="delivered"))
    assert listed[0]["EventId"] == sending["EventId"] and listed[0]["Attempts"] == 1, \
        "the dead replica's attempt was never written; the survivor's was"


@pytest.mark.cluster(replicas=0, config=CLUSTER)
def test_a_replica_frozen_mid_delivery_loses_it_and_its_late_outcome_changes_nothing(cluster, cluster_receiver):
    job, sending, sender, survivor = _first_attempt_held(cluster, cluster_receiver, timeout=4)
    with _frozen(sender):
        cluster_receiver.hang = 0
        delivered = cluster_receiver.wait_for(lambda found: events_of(found, job) == ["JobSuccess"], timeout=60)
        assert delivered[0]["id"] == sending["EventId"]
        listed = _until("delivered", lambda: _deliveries(survivor, state="delivered"))
    # Woken, the frozen replica's attempt ends (its socket timed out meanwhile) under a claim that is no
    # longer the delivery's: nothing of it is written, and it says so once.
    _until("the woken replica's word", lambda: "claim was lost" in sender.log_text(), timeout=30)
    after = _deliveries(sender, state="delivered")
    assert [(d["EventId"], d["Attempts"], d["LastStatus"]) for d in after] == \
        [(listed[0]["EventId"], 1, 200)], "the late outcome changed nothing"
    assert _deliveries(sender, state="pending") == []
