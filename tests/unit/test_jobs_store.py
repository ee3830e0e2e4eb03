"""The single-server store: save order, reload, corrupt or old saves."""
import json

import pytest

from advanced_rest.jobs import store as store_
from advanced_rest.jobs.workers import Runner
from local_jobs import LocalJobs


class Saved(Runner):
    def __init__(self, payload, steps=1):
        self._payload, self._steps = payload, steps

    def steps(self):
        return self._steps

    def step(self, index):
        pass

    def payload(self):
        return self._payload


class Properties:
    """Global properties in a dict, with every write logged in order."""

    def __init__(self):
        self.values, self.writes = {}, []

    def get(self, identifier, default=""):
        return self.values.get(identifier, default)

    def set(self, identifier, value):
        self.writes.append((identifier, value))
        self.values[identifier] = value


def _store(properties, engine=None):
    engine = engine or LocalJobs(concurrent_jobs=1, history_size=5)
    store = store_.Store(engine, properties.get, properties.set)
    store.start()
    return engine, store


def _index(properties):
    return json.loads(properties.values[store_.INDEX_PROPERTY])


def test_a_payload_is_written_before_the_index_that_names_it():
    properties = Properties()
    engine, store = _store(properties)
    engine.submit("Test", Saved({"Body": b'{"Tags": {}}', "Seed": "s"}), job_id="a")
    store.save()
    slot = _index(properties)["Jobs"][0]["Slot"]
    order = [identifier for identifier, _ in properties.writes]
    assert order.index(slot) < order.index(store_.INDEX_PROPERTY)
    store.stop()


def test_a_freed_slot_is_blanked_after_the_index_and_never_reused_before():
    properties = Properties()
    engine, store = _store(properties)
    engine.submit("Test", Saved({"Body": b"first"}), job_id="a")
    store.save()
    first_slot = store._slots["a"]
    engine._jobs["a"].document["State"] = "Success"  # finished: its payload is no longer needed
    engine.submit("Test", Saved({"Body": b"second"}), job_id="b")
    properties.writes.clear()
    store.save()
    writes = properties.writes
    # b never takes a's slot in the save that still frees it, and the blanking comes last
    assert store._slots["b"] != first_slot
    assert writes[-1] == (first_slot, "")
    assert [w[0] for w in writes].index(store_.INDEX_PROPERTY) < len(writes) - 1
    store.stop()


def test_saved_jobs_come_back_with_their_payload_bytes():
    properties = Properties()
    engine, store = _store(properties)
    body = '{"Tags": {"PatientName": "Ünïcode"}, "Content": "data:image/png;base64,AAAA"}'.encode("utf-8")
    engine.submit("Test", Saved({"Body": body, "Seed": "x"}), job_id="a", priority=4)
    store.stop()
    restored = {}
    engine2 = LocalJobs(concurrent_jobs=1)
    store2 = store_.Store(engine2, properties.get, properties.set)
    store2.load(lambda job_type, payload, record: restored.setdefault(record["ID"], Saved(payload)))
    assert restored["a"].payload() == {"Body": body, "Seed": "x"}
    assert engine2.get("a")["Priority"] == 4 and engine2.get("a")["State"] == "Pending"


def test_the_body_is_saved_as_text_not_base64_of_base64():
    properties = Properties()
    engine, store = _store(properties)
    body = b'{"Content": "data:application/octet-stream;base64,' + b"QUJD" * 1000 + b'"}'
    engine.submit("Test", Saved({"Body": body}), job_id="a")
    store.save()
    saved = properties.values[store._slots["a"]]
    assert len(saved) < len(body) + 100 and body.decode("ascii") in saved
    store.stop()


def test_a_body_that_is_not_utf8_is_kept_in_base64():
    text = store_.encode_payload({"Body": b"\xff\xfe{}", "Seed": "s"})
    assert store_.decode_payload(text) == {"Body": b"\xff\xfe{}", "Seed": "s"}


@pytest.mark.parametrize("index", ["not json", json.dumps({"Format": 99, "Jobs": []})])
def test_a_corrupt_or_unknown_index_starts_empty(index):
    properties = Properties()
    properties.values[store_.INDEX_PROPERTY] = index
    engine = LocalJobs()
    store_.Store(engine, properties.get, properties.set).load(lambda *a: Saved(None))
    assert engine.all() == []


def test_a_corrupt_payload_restores_the_job_without_its_request():
    properties = Properties()
    engine, store = _store(properties)
    engine.submit("Test", Saved({"Body": b"{}"}), job_id="a")
    store.stop()
    properties.values[_index(properties)["Jobs"][0]["Slot"]] = "{broken"
    payloads = []
    engine2 = LocalJobs()
    store_.Store(engine2, properties.get, properties.set).load(
        lambda job_type, payload, record: payloads.append(payload) or Saved(payload))
    assert payloads == [None] and engine2.get("a") is not None


def test_jobs_saved_by_the_first_release_still_load():
    import base64
    properties = Properties()
    properties.values[store_.INDEX_PROPERTY] = json.dumps({"Format": 1, "Jobs": [{
        "ID": "old", "Type": "Test", "Priority": 0, "State": "Pending", "Progress": 0,
        "CreationTime": "2026-01-01T00:00:00+00:00", "CompletionTime": None, "Runtime": 0,
        "ErrorCode": 0, "ErrorDescription": "Success", "Content": {}, "Slot": 7401}]})
    properties.values[7401] = json.dumps({"Body": base64.b64encode(b'{"Tags": {}}').decode(), "Seed": "s"})
    payloads = []
    engine = LocalJobs()
    store_.Store(engine, properties.get, properties.set).load(
        lambda job_type, payload, record: payloads.append(payload) or Saved(payload))
    assert payloads == [{"Body": b'{"Tags": {}}', "Seed": "s"}]


def test_saving_waits_for_the_load_and_refuses_when_it_never_comes(monkeypatch):
    from advanced_rest.errors import JobsLoading
    monkeypatch.setattr(store_, "READY_WITHIN", 0.01)
    properties = Properties()
    store = store_.Store(LocalJobs(), properties.get, properties.set)
    with pytest.raises(JobsLoading):
        store.save()
    assert properties.writes == []


class Parked(Saved):
    """Saved whose payload goes when parked, read back through `load()` by its next step."""

    def __init__(self, payload, steps=1):
        super().__init__(payload, steps)
        self.load, self.read_back = None, []

    def park(self, load):
        self.load, self._payload = load, None

    def step(self, index):
        if self._payload is None:
            self._payload = self.load()
            self.read_back.append(self._payload)


def test_a_saved_job_waits_without_its_request_and_its_worker_reads_it_back():
    properties = Properties()
    engine, store = _store(properties)
    runner = Parked({"Body": b'{"Tags": {}}', "Seed": "s"})
    engine.submit("Test", runner, job_id="a")
    assert runner.load is None, "not before its payload is saved"
    store.save()
    assert runner.load is not None and runner._payload is None
    engine.start()
    try:
        assert engine.wait("a", 5)["State"] == "Success"
    finally:
        engine.stop(5)
        store.stop()
    assert runner.read_back == [{"Body": b'{"Tags": {}}', "Seed": "s"}]


def test_restored_jobs_wait_without_their_request():
    properties = Properties()
    engine, store = _store(properties)
    engine.submit("Test", Saved({"Body": b"first", "Seed": "s"}), job_id="a")
    store.stop()
    restored = {}
    store2 = store_.Store(LocalJobs(concurrent_jobs=1), properties.get, properties.set)
    store2.load(lambda job_type, payload, record: restored.setdefault(record["ID"], Parked(payload)))
    assert restored["a"]._payload is None
    assert restored["a"].load() == {"Body": b"first", "Seed": "s"}


def test_a_payload_of_the_first_release_left_in_its_slot_still_decodes():
    import base64
    # After a restart from the first release the index is saved again in this format, but a job's slot keeps
    # what the first release wrote there.
    text = json.dumps({"Body": base64.b64encode(b'{"Tags": {}}').decode(), "Seed": "s"})
    assert store_.decode_payload(text) == {"Body": b'{"Tags": {}}', "Seed": "s"}


def test_no_saved_index_holds_a_change_whose_events_are_not_saved_before_it():
    """Issue 27: a crash after any write finds every saved Success's JobSuccess in the saved outbox."""
    from advanced_rest import settings
    from advanced_rest.jobs.changes import ChangeFeed
    from advanced_rest.webhooks.dispatch import OUTBOX_PROPERTY, Saver
    from advanced_rest.webhooks.outbox import Outbox

    properties = Properties()
    endpoint = settings.Webhook(url="http://127.0.0.1:1/h", name="e", events=("JobSuccess",))
    outbox = Outbox([endpoint], 100, 10, lambda: 1000.0, lambda: 1.0)
    saver = Saver(outbox, properties.get, properties.set)  # its own loop is not started: the store's saves alone
    feed = ChangeFeed(in_order=outbox.job_changed)
    stores = []
    engine = LocalJobs(concurrent_jobs=3, history_size=10, persist=lambda: stores[0].save(),
                    on_change=lambda job: (feed.record(job, "plugin"), stores[0].changed()))
    stores.append(store_.Store(engine, properties.get, properties.set, durable_first=saver.save))
    stores[0].start()
    engine.start()
    try:
        jobs = [engine.submit("Test", Saved({"Body": b"{}", "Seed": str(n)}, steps=3)) for n in range(3)]
        assert all(engine.wait(job, 5)["State"] == "Success" for job in jobs)
    finally:
        engine.stop(5)
        stores[0].stop()
    saved_events, checked = set(), 0
    for identifier, text in properties.writes:  # a crash right after each write
        if identifier == OUTBOX_PROPERTY:
            saved_events = {(d["Job"], d["Event"]) for d in json.loads(text)["Deliveries"]}
        elif identifier == store_.INDEX_PROPERTY:
            for record in json.loads(text)["Jobs"]:
                if record["State"] == "Success":
                    checked += 1
                    assert (record["ID"], "JobSuccess") in saved_events, "a saved Success without its event"
    assert checked >= 3, "the last index holds the three ends"
