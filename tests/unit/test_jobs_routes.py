"""Pieces of the jobs routes that need no Orthanc."""

# ---- long-polls: capped, and never more than their share of HTTP threads ---------------------

import json
import threading
import time

import pytest

from advanced_rest.errors import OrthancError, UnknownJob
from advanced_rest.jobs.changes import ChangeFeed
from advanced_rest.jobs.core import CoreJobs
from advanced_rest.jobs.workers import Runner
from local_jobs import LocalJobs
from advanced_rest.jobs.routes import Core, JobsApi, WaitLimits
from advanced_rest.web import Request


class Forever(Runner):
    def steps(self):
        return 1

    def step(self, index):
        time.sleep(60)


def _api(limits, loopback=None):
    engine = LocalJobs(concurrent_jobs=1)  # never started: jobs stay Pending
    core = Core(lambda uri: b"", lambda uri, body: b"{}", lambda uri: None)
    core_jobs = CoreJobs(lambda: b"[]", loopback or (lambda path: (404, b"{}")), delays=())
    return engine, JobsApi(engine, core, core_jobs, ChangeFeed(), limits)


def _wait(api, job_id, timeout):
    request = Request("GET", "/jobs/%s/wait" % job_id, (job_id, "wait"), {"timeout": str(timeout)})
    began = time.monotonic()
    api.get(request)
    return time.monotonic() - began


def test_a_wait_is_cut_at_max_wait_seconds():
    engine, api = _api(WaitLimits(max_seconds=0.2, max_waiting=5))
    job_id = engine.submit("Test", Forever())
    assert 0.15 < _wait(api, job_id, 3600) < 1.0


def test_waits_beyond_the_share_answer_at_once_with_the_current_state():
    engine, api = _api(WaitLimits(max_seconds=1.0, max_waiting=2))
    job_id = engine.submit("Test", Forever())
    holders = [threading.Thread(target=_wait, args=(api, job_id, 1)) for _ in range(2)]
    for thread in holders:
        thread.start()
    time.sleep(0.1)
    assert _wait(api, job_id, 1) < 0.1  # both slots taken
    changes = Request("GET", "/advanced-rest/jobs/changes", (), {"timeout": "1"})
    began = time.monotonic()
    api.changes(changes)
    assert time.monotonic() - began < 0.1
    for thread in holders:
        thread.join(5)
    assert 0.9 < _wait(api, job_id, 1) < 2.0  # slots given back


def _failing_core(status, code):
    def get(path):
        return status, json.dumps({"HttpStatus": status, "OrthancStatus": code}).encode()
    return get


def test_only_an_unknown_core_job_answers_404():
    _, api = _api(WaitLimits(), _failing_core(404, 17))
    with pytest.raises(UnknownJob):
        api.job(Request("GET", "/jobs/x", ("x",)))
    _, api = _api(WaitLimits(), _failing_core(503, 36))  # the database is not available
    with pytest.raises(OrthancError) as caught:
        api.job(Request("GET", "/jobs/x", ("x",)))
    assert caught.value.http_status == 503


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_plugin_job_has_no_output_and_a_core_jobs_is_the_cores(method):
    asked = []
    engine = LocalJobs(concurrent_jobs=1)
    core = Core(lambda uri: asked.append(("GET", uri)) or b"PK\x03\x04", lambda uri, body: b"{}",
                lambda uri: asked.append(("DELETE", uri)))
    api = JobsApi(engine, core, CoreJobs(lambda: b"[]", lambda path: (404, b"{}"), delays=()), ChangeFeed(),
                  WaitLimits())
    route = api.get if method == "GET" else api.delete_output
    job_id = engine.submit("Test", Forever())
    with pytest.raises(UnknownJob) as caught:
        route(Request(method, "/jobs/%s/archive" % job_id, (job_id, "archive")))
    assert caught.value.http_status == 404 and "no outputs" in caught.value.details and asked == []
    route(Request(method, "/jobs/core-id/archive", ("core-id", "archive")))  # forwarded to the core
    assert asked == [(method, "/jobs/core-id/archive")]
