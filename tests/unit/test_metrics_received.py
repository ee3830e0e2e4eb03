"""metrics/received.py: instances counted off Orthanc's change thread, with a fake REST seam."""
import logging
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from advanced_rest.errors import OrthancError
from advanced_rest.metrics import received
from advanced_rest.metrics.families import Metrics
from advanced_rest.metrics.received import ReceivedCounter

EXPLICIT_LE = "1.2.840.10008.1.2.1"


class Recorder:
    """The Metrics seam ReceivedCounter uses: enabled() and instance_received(), recorded."""

    def __init__(self, enabled=True):
        self.on, self.counted = enabled, []
        self._changed = threading.Condition()

    def enabled(self):
        return self.on

    def instance_received(self, origin, modality, transfer_syntax):
        with self._changed:
            self.counted.append((origin, modality, transfer_syntax))
            self._changed.notify_all()

    def wait_for(self, count, timeout=5.0):
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.counted) >= count, timeout), self.counted
        return self.counted


def _orthanc(instances):
    """A fake get_json over {instance id: (metadata, series)}; a value that is an exception is raised."""
    asked = []

    def get_json(uri):
        asked.append(uri)
        instance_id, what = uri.split("/")[2], uri.split("/")[3]
        answer = instances[instance_id]
        if isinstance(answer, Exception):
            raise answer
        return answer[0] if what.startswith("metadata") else answer[1]
    get_json.asked = asked
    return get_json


def _series(modality):
    return {"MainDicomTags": {"Modality": modality}}


@pytest.fixture
def counter():
    counters = []

    def make(metrics, get_json):
        made = ReceivedCounter(metrics, get_json)
        counters.append(made)
        return made
    yield make
    for made in counters:
        made.stop()


def test_each_new_instance_is_counted_with_its_origin_modality_and_transfer_syntax(counter):
    metrics = Recorder()
    get_json = _orthanc({
        "a": ({"Origin": "DicomProtocol", "TransferSyntax": EXPLICIT_LE}, _series("CT")),
        "b": ({"Origin": "RestApi", "TransferSyntax": "1.2.840.10008.1.2.4.50"}, _series("MR")),
    })
    received_counter = counter(metrics, get_json)
    received_counter.start()
    received_counter.new_instance("a")
    received_counter.new_instance("b")
    assert metrics.wait_for(2) == [("DicomProtocol", "CT", EXPLICIT_LE),
                                   ("RestApi", "MR", "1.2.840.10008.1.2.4.50")]
    assert get_json.asked == ["/instances/a/metadata?expand", "/instances/a/series",
                              "/instances/b/metadata?expand", "/instances/b/series"]


def test_missing_details_are_counted_as_unknown_and_empty(counter):
    metrics = Recorder()
    received_counter = counter(metrics, _orthanc({"a": ({}, {})}))
    received_counter.start()
    received_counter.new_instance("a")
    assert metrics.wait_for(1) == [("Unknown", "", "")]


def test_an_instance_deleted_before_it_is_read_is_skipped_quietly(counter, caplog):
    metrics = Recorder()
    received_counter = counter(metrics, _orthanc({
        "gone": OrthancError("Unknown resource", code=17),
        "b": ({"Origin": "Plugins", "TransferSyntax": EXPLICIT_LE}, _series("OT")),
    }))
    received_counter.start()
    with caplog.at_level(logging.DEBUG, logger="advanced_rest"):
        received_counter.new_instance("gone")
        received_counter.new_instance("b")
        assert metrics.wait_for(1) == [("Plugins", "OT", EXPLICIT_LE)]
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_an_unexpected_error_is_logged_and_counting_goes_on(counter, caplog):
    metrics = Recorder()
    received_counter = counter(metrics, _orthanc({
        "bad": ValueError("not JSON"),
        "b": ({"Origin": "Lua", "TransferSyntax": EXPLICIT_LE}, _series("US")),
    }))
    received_counter.start()
    with caplog.at_level(logging.ERROR, logger="advanced_rest"):
        received_counter.new_instance("bad")
        received_counter.new_instance("b")
        assert metrics.wait_for(1) == [("Lua", "US", EXPLICIT_LE)]
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and "bad" in errors[0].getMessage() and errors[0].exc_info


def test_nothing_is_queued_while_metrics_are_disabled(counter):
    metrics = Recorder(enabled=False)
    get_json = _orthanc({})
    received_counter = counter(metrics, get_json)
    received_counter.new_instance("a")  # no KeyError later: never queued
    metrics.on = True
    received_counter.new_instance("b")
    assert received_counter._queue.qsize() == 1


def test_a_full_backlog_drops_and_logs_without_blocking(monkeypatch, counter, caplog):
    monkeypatch.setattr(received, "BACKLOG", 2)
    received_counter = counter(Recorder(), _orthanc({}))  # not started: nothing is taken from the queue
    with caplog.at_level(logging.WARNING, logger="advanced_rest"):
        for instance_id in ("a", "b", "c"):
            received_counter.new_instance(instance_id)  # would block forever on a full queue
    assert received_counter._queue.qsize() == 2
    assert [record.getMessage() for record in caplog.records] == [
        "Too many instances waiting to be counted: c not counted"]


def test_stop_ends_the_thread_and_start_runs_it_again(counter):
    metrics = Recorder()
    received_counter = counter(metrics, _orthanc({
        "a": ({"Origin": "WebDav"}, _series("SR")), "b": ({"Origin": "RestApi"}, _series("SR"))}))
    received_counter.start()
    thread = received_counter._thread
    received_counter.stop()
    assert not thread.is_alive()
    received_counter.new_instance("a")  # queued while stopped: counted once running again
    received_counter.start()
    received_counter.new_instance("b")
    assert metrics.wait_for(2) == [("WebDav", "SR", ""), ("RestApi", "SR", "")]


def test_stop_before_start_does_nothing():
    ReceivedCounter(Recorder(), _orthanc({})).stop()


def test_counted_instances_reach_the_family_with_bounded_labels(counter):
    metrics = Metrics(lambda: True)
    received_counter = counter(metrics, _orthanc({
        "a": ({"Origin": "DicomProtocol", "TransferSyntax": EXPLICIT_LE}, _series("CT")),
        "b": ({"Origin": "Somewhere", "TransferSyntax": "1.2.3"}, _series("XYZ")),
    }))
    recorder = Recorder()
    original = metrics.instance_received

    def both(*labels):
        original(*labels)
        recorder.instance_received(*labels)
    metrics.instance_received = both
    received_counter.start()
    received_counter.new_instance("a")
    received_counter.new_instance("b")
    recorder.wait_for(2)
    text = metrics.exposition()[0].decode()
    samples = {tuple(sorted(sample.labels.items())): sample.value
               for family in text_string_to_metric_families(text) if family.name == "orthanc_instances_received"
               for sample in family.samples if sample.name == "orthanc_instances_received_total"}
    assert samples == {
        (("modality", "CT"), ("origin", "DicomProtocol"), ("transfer_syntax", "explicit-le")): 1.0,
        (("modality", "other"), ("origin", "other"), ("transfer_syntax", "other")): 1.0,
    }


# ---- the plugin's own instances: counted from what create-dicom told, without a read-back -------------------

def test_orthanc_id_is_the_sha1_of_the_four_identifiers_as_orthanc_gives_it():
    # Orthanc 1.10.1 and 1.13.0 answered this ID for an instance of these identifiers.
    assert received.orthanc_id("ORTHANC-1", "1.2.3", "1.2.3.4", "1.2.3.4.5") == \
        "5ea8948e-34316864-467aa1ba-d46293ee-ce5fb504"


def _until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_an_expected_instance_is_counted_as_told_without_reading_it_back(counter):
    metrics, get_json = Recorder(), _orthanc({})
    received_counter = counter(metrics, get_json)
    received_counter.start()
    assert received_counter.expect("a", "CT", EXPLICIT_LE)
    received_counter.stored("a", "Plugins")
    received_counter.new_instance("a")
    assert metrics.wait_for(1) == [("Plugins", "CT", EXPLICIT_LE)]
    assert get_json.asked == [] and received_counter._expected == {}


def test_a_cancelled_instance_is_read_back(counter):
    metrics = Recorder()
    get_json = _orthanc({"a": ({"Origin": "RestApi", "TransferSyntax": EXPLICIT_LE}, _series("MR"))})
    received_counter = counter(metrics, get_json)
    received_counter.start()
    received_counter.expect("a", "CT", "1.2.840.10008.1.2.4.50")
    received_counter.cancel("a")
    received_counter.new_instance("a")
    assert metrics.wait_for(1) == [("RestApi", "MR", EXPLICIT_LE)]
    assert get_json.asked == ["/instances/a/metadata?expand", "/instances/a/series"]


def test_a_change_before_its_store_answers_waits_for_it_then_counts_once(counter, monkeypatch):
    monkeypatch.setattr(received, "WAIT", 30.0)  # the answer below comes well within it
    # "a" is not in Orthanc's answers: read back, it could not be counted at all.
    metrics, get_json = Recorder(), _orthanc({"b": ({"Origin": "RestApi", "TransferSyntax": EXPLICIT_LE},
                                                     _series("CT"))})
    received_counter = counter(metrics, get_json)
    received_counter.start()
    received_counter.expect("a", "OT", EXPLICIT_LE)
    received_counter.new_instance("a")  # Orthanc's change thread can be faster than the store's answer
    _until(received_counter._queue.empty)
    received_counter.stored("a", "RestApi")
    assert metrics.wait_for(1) == [("RestApi", "OT", EXPLICIT_LE)]
    received_counter.stored("a", "RestApi")  # anything later about it changes nothing
    received_counter.cancel("a")
    received_counter.new_instance("b")  # counted after whatever "a" could still cause: the queue keeps order
    assert metrics.wait_for(2) == [("RestApi", "OT", EXPLICIT_LE), ("RestApi", "CT", EXPLICIT_LE)]
    assert get_json.asked == ["/instances/b/metadata?expand", "/instances/b/series"]


def test_a_cancel_while_the_change_waits_reads_it_back_at_once(counter, monkeypatch):
    monkeypatch.setattr(received, "WAIT", 30.0)
    metrics = Recorder()
    get_json = _orthanc({"a": ({"Origin": "Plugins", "TransferSyntax": EXPLICIT_LE}, _series("CT"))})
    received_counter = counter(metrics, get_json)
    received_counter.start()
    received_counter.expect("a", "OT", EXPLICIT_LE)
    received_counter.new_instance("a")
    _until(received_counter._queue.empty)
    began = time.monotonic()
    received_counter.cancel("a")
    assert metrics.wait_for(1) == [("Plugins", "CT", EXPLICIT_LE)]
    assert time.monotonic() - began < 5


def test_a_store_that_never_answers_in_time_is_read_back_and_its_late_answer_ignored(counter, monkeypatch):
    monkeypatch.setattr(received, "WAIT", 0.05)
    metrics = Recorder()
    get_json = _orthanc({"a": ({"Origin": "RestApi", "TransferSyntax": EXPLICIT_LE}, _series("CT"))})
    received_counter = counter(metrics, get_json)
    received_counter.start()
    received_counter.expect("a", "CT", EXPLICIT_LE)
    received_counter.new_instance("a")
    assert metrics.wait_for(1) == [("RestApi", "CT", EXPLICIT_LE)]
    received_counter.stored("a", "RestApi")
    assert received_counter._expected == {}, "nothing left behind to match a later change"


def test_an_instance_not_expected_is_read_back_and_the_expected_one_still_waits(counter):
    metrics = Recorder()
    get_json = _orthanc({"b": ({"Origin": "DicomProtocol", "TransferSyntax": EXPLICIT_LE}, _series("US"))})
    received_counter = counter(metrics, get_json)
    received_counter.start()
    received_counter.expect("a", "CT", EXPLICIT_LE)
    received_counter.stored("a", "Plugins")
    received_counter.new_instance("b")
    assert metrics.wait_for(1) == [("DicomProtocol", "US", EXPLICIT_LE)]
    received_counter.new_instance("a")
    assert metrics.wait_for(2)[1] == ("Plugins", "CT", EXPLICIT_LE)
    assert get_json.asked == ["/instances/b/metadata?expand", "/instances/b/series"]


def test_the_expectations_are_bounded_the_oldest_forgotten(counter, monkeypatch):
    monkeypatch.setattr(received, "MAX_EXPECTED", 2)
    metrics = Recorder()
    get_json = _orthanc({"a": ({"Origin": "RestApi", "TransferSyntax": EXPLICIT_LE}, _series("MR"))})
    received_counter = counter(metrics, get_json)
    for instance_id in ("a", "b", "c"):
        assert received_counter.expect(instance_id, "CT", EXPLICIT_LE)
        received_counter.stored(instance_id, "Plugins")
    assert list(received_counter._expected) == ["b", "c"]
    received_counter.start()
    for instance_id in ("a", "b", "c"):
        received_counter.new_instance(instance_id)
    assert metrics.wait_for(3) == [("RestApi", "MR", EXPLICIT_LE), ("Plugins", "CT", EXPLICIT_LE),
                                   ("Plugins", "CT", EXPLICIT_LE)]
    assert get_json.asked == ["/instances/a/metadata?expand", "/instances/a/series"]


def test_nothing_is_expected_while_metrics_are_off_and_a_change_not_counted_leaves_nothing(counter):
    metrics = Recorder(enabled=False)
    received_counter = counter(metrics, _orthanc({}))
    assert not received_counter.expect("a", "CT", EXPLICIT_LE)
    assert received_counter._expected == {}
    metrics.on = True
    assert received_counter.expect("b", "CT", EXPLICIT_LE)
    received_counter.stored("b", "Plugins")
    metrics.on = False  # switched off before its change came: not counted, and not kept
    received_counter.new_instance("b")
    assert received_counter._expected == {} and received_counter._queue.qsize() == 0


def test_a_change_dropped_from_a_full_backlog_leaves_no_expectation(counter, monkeypatch, caplog):
    monkeypatch.setattr(received, "BACKLOG", 1)
    received_counter = counter(Recorder(), _orthanc({}))  # not started
    received_counter.new_instance("x")
    received_counter.expect("a", "CT", EXPLICIT_LE)
    received_counter.stored("a", "Plugins")
    with caplog.at_level(logging.WARNING, logger="advanced_rest"):
        received_counter.new_instance("a")
    assert received_counter._expected == {}


def test_one_instance_stored_twice_at_once_is_read_back(counter):
    metrics = Recorder()
    get_json = _orthanc({"a": ({"Origin": "RestApi", "TransferSyntax": EXPLICIT_LE}, _series("MR"))})
    received_counter = counter(metrics, get_json)
    assert received_counter.expect("a", "CT", EXPLICIT_LE)
    assert not received_counter.expect("a", "OT", EXPLICIT_LE), "which of the two stores made it is unknown"
    received_counter.stored("a", "Plugins")
    received_counter.start()
    received_counter.new_instance("a")
    assert metrics.wait_for(1) == [("RestApi", "MR", EXPLICIT_LE)]


def test_expectations_from_many_threads_are_each_counted_once(counter):
    metrics, get_json = Recorder(), _orthanc({})
    received_counter = counter(metrics, get_json)
    received_counter.start()

    def store(worker):
        for number in range(50):
            instance_id = "%d-%d" % (worker, number)
            received_counter.expect(instance_id, "CT", EXPLICIT_LE)
            if number % 2:
                received_counter.new_instance(instance_id)  # the change first, then the answer
                received_counter.stored(instance_id, "Plugins")
            else:
                received_counter.stored(instance_id, "Plugins")
                received_counter.new_instance(instance_id)
    threads = [threading.Thread(target=store, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrics.wait_for(200) == [("Plugins", "CT", EXPLICIT_LE)] * 200
    assert get_json.asked == [] and received_counter._expected == {}
