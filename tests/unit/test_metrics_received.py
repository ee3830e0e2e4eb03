"""metrics/received.py: instances counted off Orthanc's change thread, with a fake REST seam."""
import logging
import threading

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
