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
    ("Running", "Retry", []),
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
    assert endpoint.name == "https://ris.example.org:8443/hook" and endpoint.types == ("Archive",)
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
