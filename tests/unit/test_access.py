"""access.py and the routes that use it: what is asked of the core, as whom, and what a refusal does."""
import json

import pytest

from advanced_rest import access, web
from advanced_rest.errors import AccessDenied, AccessUnknown
from advanced_rest.jobs.changes import ChangeFeed
from advanced_rest.jobs.core import CoreJobs
from advanced_rest.jobs.workers import Runner
from local_jobs import LocalJobs
from advanced_rest.jobs.routes import Core, JobsApi
from advanced_rest.web import Request

ALICE = {"authorization": "Basic YWxpY2U6cw==", "token": "t-1", "cookie": "c=1", "host": "x:8042",
         "content-length": "3", "accept-encoding": "gzip", "connection": "keep-alive",
         access.GATE_HEADER: "forged"}
CORE_ID = "11111111-2222-4333-8444-555555555555"


class Loopback:
    """Orthanc's HTTP server as the plugin sees it: answers by (method, path), every request kept."""

    def __init__(self, answers=None, default=(200, b"{}", "")):
        self.answers, self.default, self.sent = dict(answers or {}), default, []

    def __call__(self, method, path, headers, body=None, limit=None):
        self.sent.append((method, path, dict(headers), body, limit))
        answer = self.answers.get((method, path), self.default)
        if isinstance(answer, Exception):
            raise answer
        return tuple(answer) + ("",) * (3 - len(answer))


def _access(loopback, permits=2):
    return access.Access(loopback, "secret-token", permits, permit_wait=0.01)


def test_identity_carries_who_asks_and_not_the_connection():
    assert access.identity(ALICE) == {"authorization": "Basic YWxpY2U6cw==", "token": "t-1", "cookie": "c=1"}


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_at_the_core_path_is_a_403_here(status):
    gate = _access(Loopback(default=(status, b"")))
    with pytest.raises(AccessDenied) as refused:
        gate.check(Request("GET", "/advanced-rest/jobs", headers=ALICE), "GET", "/jobs")
    assert refused.value.http_status == 403 and "GET /jobs" in refused.value.details


@pytest.mark.parametrize("status", [200, 400, 404, 405])
def test_any_answer_past_the_filters_allows(status):
    _access(Loopback(default=(status, b""))).check(Request("GET", "/x", headers=ALICE), "GET", "/jobs")


def test_a_check_bears_the_token_and_a_body_the_core_refuses():
    loopback = Loopback()
    _access(loopback).check(Request("POST", "/advanced-rest/tools/create-dicom", headers=ALICE), "POST",
                            "/tools/create-dicom")
    method, path, headers, body, _ = loopback.sent[0]
    assert (method, path) == ("POST", "/tools/create-dicom")
    assert headers[access.GATE_HEADER] == "secret-token" and headers["authorization"] == ALICE["authorization"]
    with pytest.raises(ValueError):
        json.loads(body)  # the core's create-dicom answers 400 to it, before creating anything


def test_forward_carries_the_identity_without_the_token():
    loopback = Loopback({("POST", "/jobs/x/resubmit"): (200, b"{}")})
    assert _access(loopback).forward(Request("POST", "/r", headers=ALICE), "POST", "/jobs/x/resubmit", b"") \
        == (200, b"{}", "")
    assert access.GATE_HEADER not in loopback.sent[0][2]


def test_the_token_is_recognised_and_nothing_else():
    gate = _access(Loopback())
    assert gate.is_gate({access.GATE_HEADER: "secret-token"})
    assert not gate.is_gate({access.GATE_HEADER: "secret-tokeN"}) and not gate.is_gate({})


def test_no_answer_is_a_503_naming_the_loopback():
    gate = _access(Loopback(default=TimeoutError()))
    with pytest.raises(AccessUnknown) as unknown:
        gate.check(Request("GET", "/x", headers=ALICE), "GET", "/jobs")
    assert unknown.value.http_status == 503


def test_the_router_answers_a_gate_without_running_the_handler():
    ran, sent, routes = [], [], {}
    transport = web.Transport(answer=lambda output, body, mime: sent.append((200, body)),
                              send_status=lambda *a: sent.append(a), method_not_allowed=lambda *a: sent.append(a),
                              register=routes.__setitem__)
    gate = _access(Loopback())
    web.Router(transport, is_gate=gate.is_gate).add("/jobs/x/cancel", {"POST": lambda request: ran.append(1)})
    routes["/jobs/x/cancel"](object(), "/jobs/x/cancel", method="POST", headers={access.GATE_HEADER: "secret-token"})
    assert sent == [(200, b"{}")] and ran == []


# ---- the jobs routes: under {Root} the core's paths decide; at the core's paths the SDK serves -------

class Paused(Runner):
    def steps(self):
        return 1

    def step(self, index):
        pass


def _api(loopback):
    engine = LocalJobs(concurrent_jobs=1)  # never started: jobs stay Pending
    sdk = []
    core = Core(lambda uri: sdk.append(("GET", uri)) or b"zip",
                lambda uri, body: sdk.append(("POST", uri)) or b"{}",
                lambda uri: sdk.append(("DELETE", uri)))
    core_jobs = CoreJobs(lambda: json.dumps([CORE_ID]).encode(), lambda path: (200, b'{"ID": "%s"}' % CORE_ID.encode()),
                         delays=())
    return engine, sdk, JobsApi(engine, core, core_jobs, ChangeFeed(), access=_access(loopback))


def _handlers(api, own):
    return {suffix: handlers for suffix, handlers in api.routes(own=own)}


def test_under_root_a_core_jobs_action_is_done_at_the_cores_path_as_the_requester():
    loopback = Loopback({("POST", "/jobs/%s/resubmit" % CORE_ID): (403, b"")})
    _, sdk, api = _api(loopback)
    post = _handlers(api, True)["/jobs/([^/]+)/([^/]+)"]["POST"]
    with pytest.raises(AccessDenied):
        post(Request("POST", "/advanced-rest/jobs/%s/resubmit" % CORE_ID, (CORE_ID, "resubmit"), headers=ALICE))
    assert sdk == []  # never through the SDK, which no filter guards
    assert loopback.sent[-1][2]["authorization"] == ALICE["authorization"]


def test_under_root_a_core_jobs_json_is_read_as_the_requester():
    loopback = Loopback({("GET", "/jobs/%s" % CORE_ID): (403, b"")})
    _, _, api = _api(loopback)
    job = _handlers(api, True)["/jobs/([^/]+)"]["GET"]
    with pytest.raises(AccessDenied):
        job(Request("GET", "/advanced-rest/jobs/" + CORE_ID, (CORE_ID,), headers=ALICE))


def test_under_root_a_plugin_job_is_checked_at_its_core_path_first():
    loopback = Loopback(default=(403, b""))
    engine, _, api = _api(loopback)
    job_id = engine.submit("Test", Paused())
    cancel = _handlers(api, True)["/jobs/([^/]+)/([^/]+)"]["POST"]
    with pytest.raises(AccessDenied):
        cancel(Request("POST", "/advanced-rest/jobs/%s/cancel" % job_id, (job_id, "cancel"), headers=ALICE))
    assert engine.get(job_id)["State"] == "Pending"
    assert loopback.sent[-1][:2] == ("POST", "/jobs/%s/cancel" % job_id)


def test_at_the_cores_paths_nothing_more_is_asked():
    loopback = Loopback(default=(403, b""))
    engine, _, api = _api(loopback)
    job_id = engine.submit("Test", Paused())
    handlers = _handlers(api, False)
    handlers["/jobs/(%s)/([^/]+)" % api_pattern()]["POST"](
        Request("POST", "/jobs/%s/cancel" % job_id, (job_id, "cancel"), headers=ALICE))
    handlers["/jobs"]["GET"](Request("GET", "/jobs", headers=ALICE))
    assert loopback.sent == [] and engine.get(job_id)["State"] == "Failure"


def api_pattern():
    from advanced_rest.jobs import model
    return model.PLUGIN_JOB_ID


def test_a_large_core_output_is_redirected_to_the_cores_path():
    path = "/jobs/%s/archive" % CORE_ID
    loopback = Loopback({("GET", path): access.OutputTooLarge(10 ** 10)})
    _, _, api = _api(loopback)
    get = _handlers(api, True)["/jobs/([^/]+)/([^/]+)"]["GET"]
    answer = get(Request("GET", "/advanced-rest" + path, (CORE_ID, "archive"), headers=ALICE))
    assert isinstance(answer, web.Redirect) and answer.location == "../../../" + path.lstrip("/")
    assert loopback.sent[-1][4] == 256 * 1024 * 1024  # the limit asked for
