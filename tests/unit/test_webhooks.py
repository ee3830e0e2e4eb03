"""Webhooks' pure parts: events of a job's change, signatures a Standard Webhooks receiver accepts,
backoff, and one server's outbox (order per job, durable before due, retries, bounds, restore)."""
import json

import pytest
import standardwebhooks

from advanced_rest import settings
from advanced_rest.errors import UnknownResource
from advanced_rest.webhooks import events
from advanced_rest.webhooks.outbox import Outbox

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("previous, state, expected", [
    (None, "Pending", ["JobSubmitted"]),
    ("Pending", "Running", ["JobRunning"]),
    ("Running", "Running", []),
    ("Running", "Paused", ["JobPaused"]),
    ("Paused", "Pending", []),  # resumed: JobRunning comes when it runs
    ("Running", "Success", ["JobSuccess"]),
    ("Running", "Failure", ["JobFailure"]),
    ("Failure", "Pending", ["JobSubmitted"]),  # resubmitted
    (None, "Success", ["JobSubmitted", "JobSuccess"]),  # a core job first seen ended
    ("Success", "Deleted", ["JobDeleted"]),
    (None, "Deleted", ["JobDeleted"]),
    ("Failure", "Retry", ["JobRetry"]),  # a failed job a policy retries later (retries/)
    ("Retry", "Pending", []),  # its retry runs: it was submitted already
])
def test_events_of_a_change(previous, state, expected):
    assert events.events_for(previous, state) == expected


def test_a_standard_webhooks_receiver_accepts_our_signature():
    text = events.body("JobSuccess", 7, {"ID": "j", "State": "Success"}, "replica-a")
    import time
    headers = events.headers("msg_1", text, SECRET, time.time())
    assert standardwebhooks.Webhook(SECRET).verify(text, headers) == json.loads(text)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(text.replace("Success", "Failure"), headers)
    assert "webhook-signature" not in events.headers("msg_1", text, "", time.time())


def _endpoint(**options):
    return settings.Webhook(**dict({"url": "http://127.0.0.1:1/h", "name": "e", "events": tuple(settings.WEBHOOK_EVENTS),
                                    "backoff_seconds": 1.0, "max_backoff_seconds": 8.0, "max_attempts": 5}, **options))


def test_backoff_doubles_up_to_its_cap_with_jitter():
    endpoint = _endpoint()
    assert [events.retry_delay(n, endpoint, lambda: 1.0) for n in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 8, 8, 8]
    assert events.retry_delay(3, endpoint, lambda: 0.0) == 2.0  # half of it at least
    assert events.gives_up(5, 0, 1, endpoint) and not events.gives_up(4, 0, 1, endpoint)
    assert events.gives_up(1, 0, 24 * 3600, endpoint)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _outbox(max_pending=100, kept=10, endpoints=None):
    clock = Clock()
    return Outbox(endpoints or [_endpoint()], max_pending, kept, clock, lambda: 1.0), clock


def _job(job_id, state, job_type="CreateDicom"):
    return {"ID": job_id, "State": state, "Type": job_type}


def _saved(outbox):
    version, _ = outbox.snapshot()
    outbox.saved(version)


def test_nothing_is_due_before_it_is_saved_and_a_job_goes_in_order():
    outbox, clock = _outbox()
    outbox.job_changed(_job("a", "Pending"), 1)
    outbox.job_changed(_job("a", "Running"), 2)
    outbox.job_changed(_job("b", "Pending"), 3)
    assert outbox.take("e", 0) is None, "not saved yet"
    _saved(outbox)
    first = outbox.take("e", 0)
    second = outbox.take("e", 0)
    assert (first["Job"], first["Event"]) == ("a", "JobSubmitted")
    assert (second["Job"], second["Event"]) == ("b", "JobSubmitted"), "a's next waits behind a's first"
    assert outbox.take("e", 0) is None
    assert outbox.attempted(first, None, "connection refused") == "Pending"
    assert outbox.take("e", 0) is None, "a's first is retried later; a's second still waits"
    clock.now += 1.0
    again = outbox.take("e", 0)
    assert again["EventId"] == first["EventId"] and again["Attempts"] == 1
    assert outbox.attempted(again, 200, None) == "Delivered"
    assert outbox.take("e", 0)["Event"] == "JobRunning"


def test_a_delivery_fails_after_its_attempts_and_can_be_redelivered():
    outbox, clock = _outbox()
    outbox.job_changed(_job("a", "Success"), 1)
    _saved(outbox)
    for attempt in range(5):
        delivery = outbox.take("e", 0)
        state = outbox.attempted(delivery, 500, "HTTP 500")
        clock.now += 100
    assert state == "Failed" and [d["Attempts"] for d in outbox.list(state="Failed")] == [5]
    seq = outbox.list(state="Failed")[0]["Seq"]
    outbox.redeliver(seq)
    _saved(outbox)
    assert outbox.take("e", 0)["Seq"] == seq
    with pytest.raises(UnknownResource):
        outbox.redeliver(999)


def test_a_full_outbox_refuses_and_endpoints_choose_events_and_types():
    only_ends = _endpoint(name="ends", events=("JobSuccess",), types=("Archive",))
    outbox, _ = _outbox(max_pending=2, endpoints=[_endpoint(), only_ends])
    outbox.job_changed(_job("a", "Pending"), 1)
    outbox.job_changed(_job("c", "Success", "Archive"), 2)
    assert outbox.refusals() == {("e", "JobSuccess"): 1, ("ends", "JobSuccess"): 1}
    assert outbox.refusals() == {} and outbox.depth()[0] == 2
    assert outbox.list() == [], "nothing is listed before it is saved"
    _saved(outbox)
    assert [d["Endpoint"] for d in outbox.list()] == ["e", "e"]


def test_restored_deliveries_and_states_survive_and_finished_ones_are_trimmed():
    outbox, _ = _outbox(kept=1)
    for job in "abc":
        outbox.job_changed(_job(job, "Success"), 1)
    _saved(outbox)
    while True:
        delivery = outbox.take("e", 0)
        if delivery is None:
            break
        outbox.attempted(delivery, 200, None)
    assert len(outbox.list(state="Delivered")) == 1, "kept: 1"
    outbox.job_changed(_job("d", "Success"), 2)
    _, saved = outbox.snapshot()
    restored, _ = _outbox(kept=1)
    restored.restore(json.loads(json.dumps(saved)))
    assert [d["Job"] for d in restored.list(state="Pending")] == ["d", "d"]
    restored.job_changed(_job("a", "Success"), 1)
    assert restored.depth()[0] == 2, "no event twice"
    assert restored.take("e", 0)["Job"] == "d", "restored deliveries were saved: due"


def test_events_queued_before_the_restore_come_after_the_saved_ones():
    outbox, _ = _outbox()
    outbox.job_changed(_job("a", "Running"), 5)
    _, saved = outbox.snapshot()
    fresh, _ = _outbox()
    fresh.job_changed(_job("a", "Success"), 1)  # a request served before ORTHANC_STARTED restored the outbox
    fresh.job_changed(_job("b", "Pending"), 2)
    assert fresh.restore(json.loads(json.dumps(saved))) == 2
    _saved(fresh)
    # (the fresh outbox did not know job a yet: its JobSubmitted comes twice, with two webhook-ids)
    assert [(d["Job"], d["Event"]) for d in fresh.list()] == [
        ("a", "JobSubmitted"), ("a", "JobRunning"), ("a", "JobSubmitted"), ("a", "JobSuccess"), ("b", "JobSubmitted")]
    assert len({d["Seq"] for d in fresh.list()}) == 5 and fresh.depth()[0] == 5
    assert fresh.take("e", 0)["Event"] == "JobSubmitted"


def test_a_delivery_being_sent_cannot_be_redelivered():
    from advanced_rest.errors import DeliveryBusy
    outbox, _ = _outbox()
    outbox.job_changed(_job("a", "Pending"), 1)
    _saved(outbox)
    sending = outbox.take("e", 0)
    with pytest.raises(DeliveryBusy):
        outbox.redeliver(sending["Seq"])
    outbox.attempted(sending, 200, None)
    assert outbox.redeliver(sending["Seq"])["State"] == "Pending"


def test_webhooks_configuration_is_checked_and_never_shows_the_secret():
    got = settings.from_configuration({"AdvancedRest": {"Webhooks": [
        {"Url": "https://user:pw@ris.example.org:8443/hook?token=x", "Secret": SECRET, "Types": ["Archive"]}]}})
    endpoint, = got.webhooks
    assert endpoint.name == "https://ris.example.org:8443" and endpoint.types == ("Archive",)
    assert endpoint.events == ("JobSuccess", "JobFailure") and SECRET not in repr(got)
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_configuration({"AdvancedRest": {"Webhooks": [
            {"Url": "ftp://x/"}, {"Url": "http://a/", "Events": ["Nope"], "Secret": "no way!", "Typo": 1},
            {"Url": "http://b/", "Name": "n"}, {"Url": "http://c/", "Name": "n"}, "x"]}})
    text = str(caught.value)
    for part in ("Webhooks[0].Url", "Webhooks[1].Events", "Webhooks[1].Secret", "Webhooks[1].Typo",
                 "Webhooks[3].Name", "Webhooks[4] must be a JSON object"):
        assert part in text
    assert "no way!" not in text


# ---- an endpoint's URL shows its scheme, host and port only -----------------------------------------

TOKEN = "tok-3f9a1c"


@pytest.mark.parametrize("url, name", [
    ("https://hooks.example.org/in/%s" % TOKEN, "https://hooks.example.org:443"),
    ("http://127.0.0.1:8080/hook?token=%s" % TOKEN, "http://127.0.0.1:8080"),
    ("http://user:%s@Hooks.Example.org/#%s" % (TOKEN, TOKEN), "http://hooks.example.org:80"),
    ("https://[::1]:8443/%s?a=%s" % (TOKEN, TOKEN), "https://[::1]:8443"),
    ("http://ris.example.org:80", "http://ris.example.org:80"),
], ids=["path", "query", "credentials-fragment", "ipv6", "bare"])
def test_an_unnamed_endpoint_is_named_by_its_scheme_host_and_port(url, name):
    got = settings.from_configuration({"AdvancedRest": {"Webhooks": [{"Url": url}]}})
    endpoint, = got.webhooks
    assert endpoint.name == name and endpoint.url == url
    assert TOKEN not in repr(got), "the settings never print the URL"


@pytest.mark.parametrize("endpoints, problem", [
    ([{"Url": "http://a/one"}, {"Url": "http://a:80/two"}],
     "AdvancedRest.Webhooks[1] has no Name, and its default name 'http://a:80'"),
    ([{"Url": "http://a:81/", "Name": "x"}, {"Url": "http://b/", "Name": "x"}],
     "AdvancedRest.Webhooks[1].Name 'x' is already AdvancedRest.Webhooks[0]'s"),
    ([{"Url": "https://a/", "Name": "https://b:443"}, {"Url": "https://b/%s" % TOKEN}],
     "AdvancedRest.Webhooks[1] has no Name, and its default name 'https://b:443'"),
    ([{"Url": "http://a:http/%s" % TOKEN}], "AdvancedRest.Webhooks[0].Url must be an http:// or https:// URL"),
], ids=["same-host-and-port", "same-name", "a-name-taken-by-a-default", "bad-port"])
def test_two_endpoints_of_one_name_are_refused_and_the_url_is_never_told(endpoints, problem):
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_configuration({"AdvancedRest": {"Webhooks": endpoints}})
    assert problem in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_endpoints_of_one_host_and_port_are_told_apart_by_their_names():
    got = settings.from_configuration({"AdvancedRest": {"Webhooks": [
        {"Url": "http://a/one"}, {"Url": "http://a/two", "Name": "two"}]}})
    assert [endpoint.name for endpoint in got.webhooks] == ["http://a:80", "two"]


def test_answers_metrics_logs_and_threads_show_no_more_of_the_url_than_its_origin(caplog):
    import logging
    import threading
    import time

    from advanced_rest.metrics.families import Metrics
    from advanced_rest.webhooks.dispatch import Dispatcher
    from advanced_rest.webhooks.routes import WebhooksApi
    url = "http://user:%s@127.0.0.1:9/in/%s?token=%s#%s" % ((TOKEN,) * 4)
    endpoint, = settings.from_configuration({"AdvancedRest": {"Webhooks": [
        {"Url": url, "Events": ["JobSuccess"], "BackoffSeconds": 0.01, "MaxAttempts": 2}]}}).webhooks
    outbox = Outbox([endpoint], 100, 10, time.time, lambda: 0.0)
    outbox.job_changed(_job("a", "Success"), 1)
    _saved(outbox)
    metrics, posted, done, names = Metrics(lambda: True), [], threading.Event(), []

    def post(target, text, headers, timeout):
        posted.append(target)
        names.extend(thread.name for thread in threading.enumerate())
        return 500, "HTTP 500"

    def observe(name, state, seconds):
        metrics.webhook_attempted(name, state, seconds)
        if state == "Failed":
            done.set()
    metrics.add_webhooks(outbox.depth, lambda: True, time.time)
    caplog.set_level(logging.DEBUG)
    dispatcher = Dispatcher(outbox, [endpoint], observe=observe, post=post)
    dispatcher.start()
    try:
        assert done.wait(10), "the delivery failed for good"
    finally:
        dispatcher.stop()
    assert posted == [url, url], "the sender, and only it, has the whole URL"
    api = WebhooksApi(outbox)
    shown = [api.endpoints(None).body.decode(), api.deliveries(_Request()).body.decode(),
             metrics.exposition()[0].decode(), caplog.text, " ".join(names)]
    assert "http://127.0.0.1:9" in shown[0] and "delivery 1 of JobSuccess failed (HTTP 500)" in caplog.text
    assert 'endpoint="http://127.0.0.1:9"' in shown[2] and "advanced-rest-webhook-http://127.0.0" in shown[4]
    for text in shown:
        assert TOKEN not in text and "user" not in text and "/in" not in text


class _Request:
    get = {}


def test_deliveries_kept_under_the_former_default_name_are_the_endpoints_after_an_upgrade():
    url = "http://hooks.example.org/in/%s?token=%s" % (TOKEN, TOKEN)
    endpoint, = settings.from_configuration({"AdvancedRest": {"Webhooks": [{"Url": url}]}}).webhooks
    former = "http://hooks.example.org/in/%s" % TOKEN  # what 0.1.0 named it
    assert endpoint.former_name == former and TOKEN not in repr(endpoint)
    old, _ = _outbox(endpoints=[_endpoint(name=former)])
    old.job_changed(_job("a", "Success"), 1)
    _, saved = old.snapshot()
    upgraded, _ = _outbox(endpoints=[endpoint])
    assert upgraded.restore(json.loads(json.dumps(saved))) == 2
    _saved(upgraded)
    assert [(d["Endpoint"], d["State"]) for d in upgraded.list()] == [("http://hooks.example.org:80", "Pending")] * 2
    assert upgraded.take("http://hooks.example.org:80", 0)["Job"] == "a", "still sent, to the same URL"


class _Conn:
    """A cluster transaction that records its statements."""

    def __init__(self):
        self.executed = []

    def execute(self, sql, params=None):
        self.executed.append((" ".join(sql.split()), params))


def test_a_cluster_renames_the_rows_kept_under_the_former_default_name_at_start():
    from advanced_rest.webhooks.cluster import ClusterOutbox
    url = "http://hooks.example.org/in/%s?token=%s" % (TOKEN, TOKEN)
    for options, renames in (({}, [("http://hooks.example.org:80", "http://hooks.example.org/in/%s" % TOKEN)]),
                             ({"Name": "ris"}, [])):
        endpoints = settings.from_configuration({"AdvancedRest": {"Webhooks": [dict(options, Url=url)]}}).webhooks
        conn = _Conn()
        ClusterOutbox(None, endpoints, 10, 10, 30).create(conn)
        assert [params for sql, params in conn.executed if sql.startswith("UPDATE")] == renames
