"""metrics/push.py: the headline values, their pusher (a fake SetMetricsValue) and their typed collector."""
import logging
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from advanced_rest.metrics import push
from advanced_rest.metrics.families import tally
from advanced_rest.metrics.push import HEADLINE, HeadlineCollector, Pusher, headline

PENDING, RUNNING = "orthanc_advanced_rest_jobs_pending", "orthanc_advanced_rest_jobs_running"
SUCCESS, FAILURE = "orthanc_advanced_rest_jobs_success", "orthanc_advanced_rest_jobs_failure"


def test_the_headline_names_are_the_ones_the_readme_documents():
    assert set(HEADLINE) == {PENDING, RUNNING, SUCCESS, FAILURE}


@pytest.mark.parametrize("states, expected", [
    ([], {PENDING: 0, RUNNING: 0, SUCCESS: 0, FAILURE: 0}),
    (["Pending", "Running", "Running", "Success", "Success", "Success", "Failure"],
     {PENDING: 1, RUNNING: 2, SUCCESS: 3, FAILURE: 1}),
    (["Paused", "Retry", None, "running", "Unknown"], {PENDING: 0, RUNNING: 1, SUCCESS: 0, FAILURE: 0}),
], ids=["no-job", "every-counted-state", "other-states-ignored"])
def test_headline_counts_the_plugin_s_jobs_by_state(states, expected):
    jobs = [{"ID": str(i)} if state is None else {"ID": str(i), "State": state} for i, state in enumerate(states)]
    assert headline(lambda: tally(jobs)) == expected


class Core:
    """A fake SetMetricsValue: the last value of each name, and how many pushes came."""

    def __init__(self, fail=False):
        self.values, self.pushes, self.fail = {}, 0, fail
        self._pushed = threading.Condition()

    def set_value(self, name, value):
        if self.fail:
            raise RuntimeError("SetMetricsValue refused")
        with self._pushed:
            self.values[name] = value
            self.pushes += 1
            self._pushed.notify_all()

    def wait_for(self, pushes, timeout=5.0):
        with self._pushed:
            assert self._pushed.wait_for(lambda: self.pushes >= pushes, timeout), self.pushes


@pytest.fixture
def pushers():
    started = []

    def make(*args):
        pusher = Pusher(*args)
        started.append(pusher)
        return pusher
    yield make
    for pusher in started:
        pusher.stop()


def test_values_are_pushed_at_start_then_every_period(monkeypatch, pushers):
    monkeypatch.setattr(push, "PUSH_EVERY", 0.01)
    core, jobs = Core(), [{"State": "Running"}]
    pusher = pushers(lambda: headline(lambda: tally(jobs)), core.set_value, lambda: True)
    pusher.start()
    core.wait_for(4)
    assert core.values == {PENDING: 0, RUNNING: 1, SUCCESS: 0, FAILURE: 0}
    jobs[0] = {"State": "Success"}
    core.wait_for(core.pushes + 8)  # two rounds later, the new state has been pushed
    assert core.values == {PENDING: 0, RUNNING: 0, SUCCESS: 1, FAILURE: 0}


def test_nothing_is_pushed_while_metrics_are_disabled(monkeypatch, pushers):
    monkeypatch.setattr(push, "PUSH_EVERY", 0.01)
    core, enabled = Core(), threading.Event()
    pusher = pushers(lambda: {PENDING: 2}, core.set_value, enabled.is_set)
    pusher.start()
    time.sleep(0.1)
    assert core.pushes == 0
    enabled.set()
    core.wait_for(1)
    assert core.values == {PENDING: 2}


@pytest.mark.parametrize("where", ["values", "set_value"])
def test_a_failing_push_is_logged_and_the_next_one_still_comes(monkeypatch, pushers, caplog, where):
    monkeypatch.setattr(push, "PUSH_EVERY", 0.01)
    core, calls = Core(fail=where == "set_value"), []

    def values():
        calls.append(1)
        if where == "values" and len(calls) == 1:
            raise RuntimeError("engine gone")
        if where == "set_value" and len(calls) == 2:
            core.fail = False
        return {RUNNING: 3}
    with caplog.at_level(logging.ERROR, logger="advanced_rest"):
        pusher = pushers(values, core.set_value, lambda: True)
        pusher.start()
        core.wait_for(1)
    assert core.values == {RUNNING: 3}
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert errors and errors[0].getMessage() == "Could not push the plugin's headline metrics" and errors[0].exc_info


def test_stop_wakes_the_pusher_at_once_and_start_runs_it_again(pushers):
    core = Core()
    pusher = pushers(lambda: {FAILURE: 1}, core.set_value, lambda: True)
    pusher.start()
    core.wait_for(1)
    thread = pusher._thread
    began = time.monotonic()
    pusher.stop()  # mid-wait of PUSH_EVERY (5 s): the stop event ends the wait
    assert not thread.is_alive() and time.monotonic() - began < 1.0
    pusher.start()
    core.wait_for(2)


def test_stop_before_start_does_nothing():
    Pusher(dict, Core().set_value, lambda: True).stop()


def test_the_collector_serves_the_values_as_gauges_with_help_and_type():
    values = {PENDING: 1, SUCCESS: 4}  # a name the source lacks is served as 0
    calls = []

    def source():
        calls.append(1)
        return values
    registry = CollectorRegistry()
    registry.register(HeadlineCollector(source))
    calls.clear()  # registering asks describe(), never the source
    text = generate_latest(registry).decode()
    assert len(calls) == 1
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert set(families) == set(HEADLINE)
    for name, help_text in HEADLINE.items():
        assert families[name].type == "gauge" and families[name].documentation == help_text
        assert [(sample.name, sample.labels, sample.value) for sample in families[name].samples] == [
            (name, {}, float(values.get(name, 0)))]
    assert "# TYPE %s gauge\n" % PENDING in text


def test_the_collector_describes_without_reading_the_values():
    def source():
        raise AssertionError("describe() must not read the values")
    described = HeadlineCollector(source).describe()
    assert [(family.name, family.type, family.samples) for family in described] == [
        (name, "gauge", []) for name in HEADLINE]
