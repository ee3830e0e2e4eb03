"""Every operation of the plugin's {Root}/openapi.json fuzzed with schemathesis, against the core.

The description is loaded from the live server. Each operation gets EXAMPLES_PER_OPERATION cases,
some that fit its schema and some that do not (schemathesis' positive and negative generation),
some aimed at real jobs of the core and of the plugin. Each request also goes to the core with
the {Root} prefix taken off (/advanced-rest/jobs -> /jobs; /advanced-rest/metrics -> /metrics, a
route the core lacks), and fuzz_rules.py decides: 2xx, or 4xx with the core's error document; 5xx
only where the core answers 5xx too; the plugin's Orthanc alive afterwards; a refused create-dicom
stores nothing; and schemathesis' response-status conformance check: every status the plugin answers
is one its description documents for that operation. The methods a route lacks are sent once each.

OPERATIONS names what is fuzzed, one test each (so that one failing operation does not hide the
others); a test fails when the live description has an operation that is not in it. The run is
reproducible (a seed per leg and operation). What it found is kept in REGRESSIONS.
"""
import json
import re
import time
import zlib
from urllib.parse import quote, unquote

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.internal.conjecture import utils as conjecture_utils
from hypothesis import strategies as st
from schemathesis import DataGenerationMethod
from schemathesis.checks import status_code_conformance
from schemathesis.internal.checks import CheckContext

from fuzz_rules import CRASHED, finish_job, gist, instances, remove_new, revive, send, verdict

ROOT = "/advanced-rest"
# Requests per operation and leg. Each leg draws its own (a seed of its name, the same every run):
# the four legs send 200 different requests to each operation.
EXAMPLES_PER_OPERATION = 50
METHODS = ("GET", "POST", "PUT", "DELETE")
WAIT_CAP = 1.0  # seconds: the longest wait a fuzzed ?timeout= may ask for (a real job may be paused)
ACTIONS = ("cancel", "pause", "resume", "resubmit", "wait", "archive", "output", "")
# Path segments that mean something to a URI or a file system, once decoded.
ODD_SEGMENTS = ("?", "?expand", "#", "%", "%3F", "..", ".", "a/b", " ", "\\", "é", "*", "jobs", ",")
TINY_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAAAAABX3VL4AAAADklEQVR4nGNgYGBgYGAAAAAFAAG"
            "jPs8AAAAASUVORK5CYII=")

# "METHOD path" -> reason when the operation currently breaks a rule (xfail, strict), else None.
OPERATIONS = {
    "POST /tools/create-dicom": None,
    "POST %s/tools/create-dicom" % ROOT: None,
    "GET /jobs": None,
    "GET %s/jobs" % ROOT: None,
    "GET %s/jobs/changes" % ROOT: None,
    "GET /jobs/{id}": None,
    "GET %s/jobs/{id}" % ROOT: None,
    "DELETE /jobs/{id}": None,
    "DELETE %s/jobs/{id}" % ROOT: None,
    "GET /jobs/{id}/{name}": None,
    "GET %s/jobs/{id}/{name}" % ROOT: None,
    "POST /jobs/{id}/{name}": None,
    "POST %s/jobs/{id}/{name}" % ROOT: None,
    "DELETE /jobs/{id}/{name}": None,
    "DELETE %s/jobs/{id}/{name}" % ROOT: None,
    "GET /tools/metrics-prometheus": None,
    "GET %s/metrics" % ROOT: None,
    "GET %s/system" % ROOT: None,
    "GET %s/webhooks" % ROOT: None,
    "GET %s/webhooks/deliveries" % ROOT: None,
    "POST %s/webhooks/deliveries/{id}/redeliver" % ROOT: None,
    "POST %s/webhooks/test" % ROOT: None,
    "GET %s/openapi.json" % ROOT: None,
    "GET %s/ui" % ROOT: None,
    "GET %s/ui/index.html" % ROOT: None,
    "GET %s/ui/app.js" % ROOT: None,
    "GET %s/ui/style.css" % ROOT: None,
}


def core_path(path):
    """The core's route for one of the plugin's: {Root} taken off."""
    return path[len(ROOT):] if path == ROOT or path.startswith(ROOT + "/") else path


PLUGIN_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def answered_by_the_core(path):
    """Whether the plugin's Orthanc answers `path` with the core's own handler (README, Routes): at the
    core's paths, /jobs/{id}... of an id that is not of the plugin's form, /jobs/{id}/wait excepted."""
    parts = [unquote(part) for part in path.split("?", 1)[0].split("/")]
    return (len(parts) >= 3 and parts[1] == "jobs" and parts[2] != "" and not PLUGIN_JOB_ID.fullmatch(parts[2])
            and not (len(parts) == 4 and parts[3] == "wait"))


def load_schema(plugin):
    """The plugin's OpenAPI description as schemathesis reads it, requests going to `plugin`."""
    return schemathesis.openapi.from_uri(plugin.url + ROOT + "/openapi.json", base_url=plugin.url,
                                         auth=plugin.session.auth)


def _capped(query):
    """`query` with a numeric timeout lowered to WAIT_CAP (the routes would wait that long)."""
    if not isinstance(query, dict) or "timeout" not in query:
        return query
    try:
        if float(query["timeout"]) > WAIT_CAP:
            return dict(query, timeout=WAIT_CAP)
    except (TypeError, ValueError):
        pass
    return query


def cases(operation, job_ids):
    """Cases of `operation`: positive and negative, some on real job ids and actions."""
    generated = operation.as_strategy(data_generation_method=DataGenerationMethod.positive)
    if list(operation.iter_parameters()) or len(operation.body):  # else nothing can break the schema
        generated = st.one_of(generated, operation.as_strategy(data_generation_method=DataGenerationMethod.negative))
    names = {p.name for p in operation.path_parameters}

    @st.composite
    def aimed(draw):
        case = draw(generated)
        for name, chosen in (("id", job_ids), ("name", ACTIONS)):
            if name in names:
                pick = draw(st.sampled_from(("generated", "chosen", "chosen", "odd")))
                if pick != "generated":
                    value = draw(st.sampled_from(chosen if pick == "chosen" else ODD_SEGMENTS))
                    # quoted as schemathesis quotes what it generates
                    case.path_parameters = dict(case.path_parameters or {}, **{name: quote(value, safe="")})
        case.query = _capped(case.query)
        return case

    return aimed()


def check(core, plugin, method, path, **kw):
    """Send `method path` to the plugin, and to the core without {Root}; assert every rule.
    Returns the plugin's status."""
    creates = method == "POST" and core_path(path) == "/tools/create-dicom"
    before = instances(plugin) if creates else None
    core_before = instances(core) if creates else None
    kw.setdefault("timeout", 60)
    status, text = send(plugin, method, path, **kw)
    core_status, core_text = send(core, method, core_path(path), **kw)
    revive(core)
    died = revive(plugin)

    problem = verdict(status, text, core_status, method, None)
    if problem and answered_by_the_core(path) and isinstance(status, int) and 400 <= status < 500:
        problem = None  # the core's own 4xx, with the body it sends (none on Orthanc 1.10)
    leftovers = 0
    if creates and not died:
        accepted = isinstance(status, int) and 200 <= status < 300
        if accepted and '"/jobs/' in text:
            problem = problem or finish_job(plugin, text)
        elif not accepted:
            leftovers = len(instances(plugin) - before)
        remove_new(plugin, before)
        if core_status != CRASHED:
            remove_new(core, core_before)

    where = "\nrequest: %s %s %s\nplugin: %s %s\ncore: %s %s %s" % (
        method, path, _shown(kw), status, gist(text), core_status, core_path(path), gist(core_text))
    assert not died, "the plugin's Orthanc died (restarted for the next tests)" + where
    assert problem is None, problem + where
    assert not leftovers, "a refused create-dicom left %d instance(s) stored" % leftovers + where
    return status


def documented(case, status):
    """Assert, with schemathesis' own check, that `status` is documented for the case's operation."""
    response = requests.Response()
    response.status_code = status
    try:
        status_code_conformance(CheckContext(override=None, auth=None, headers=None), response, case)
    except AssertionError as error:
        context = getattr(error, "context", None)
        raise AssertionError("%s %s: %s (%s)" % (case.method, case.formatted_path, error,
                                                 getattr(context, "message", "").replace("\n", ", "))) from None


def _shown(kw):
    shown = {k: v for k, v in kw.items() if k in ("params", "json", "data") and v}
    text = json.dumps(shown, default=repr)
    return text if len(text) < 500 else text[:500] + "..."


@pytest.fixture(scope="module")
def api(leg, core, plugin):
    """(schema, {"METHOD path": operation}, real job ids) for the session's plugin server."""
    if not hasattr(conjecture_utils.many, "more"):
        pytest.fail("hypothesis %s lacks many.more(), which hypothesis-jsonschema (schemathesis 3) calls: "
                    "tests/requirements.txt must keep hypothesis below 6.170.10" % hypothesis.__version__)
    schema = load_schema(plugin)
    operations = {"%s %s" % (op.method.upper(), op.path): op
                  for op in (result.ok() for result in schema.get_all_operations())}
    patients = set(plugin.get("/patients").json())
    ids = []
    for content in (TINY_PNG, [TINY_PNG] * 3, "data:image/png;base64,AAAA"):  # success, series, failure
        answer = plugin.post("/tools/create-dicom", data=json.dumps(
            {"Tags": {"PatientName": "OpenAPI^Fuzz"}, "Content": content, "Asynchronous": True}))
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["ID"])
    for job in ids:
        plugin.get("/jobs/%s/wait" % job, params={"timeout": 30}, timeout=60)
    study = plugin.get("/studies").json()[0]
    archive = plugin.post("/studies/%s/archive" % study, data=json.dumps({"Asynchronous": True}))
    assert archive.status_code == 200, archive.text
    ids.append(archive.json()["ID"])  # a core job
    yield schema, operations, ids
    for patient in set(plugin.get("/patients").json()) - patients:
        plugin.delete("/patients/%s" % patient)


def test_every_operation_is_fuzzed(api):
    _, operations, _ = api
    assert sorted(operations) == sorted(OPERATIONS), "add the new operations to OPERATIONS"


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_operation(request, leg, api, core, plugin, name):
    _, operations, job_ids = api
    if OPERATIONS[name]:
        request.applymarker(pytest.mark.xfail(strict=True, reason=OPERATIONS[name]))
    if name not in operations:
        pytest.fail("the live description has no %s" % name)
    statuses = {}
    began = time.monotonic()

    @hypothesis.seed(zlib.crc32(("%s %s" % (leg.name, name)).encode()))
    @settings(max_examples=EXAMPLES_PER_OPERATION, database=None, deadline=None,
              print_blob=False, suppress_health_check=list(HealthCheck))
    @given(cases(operations[name], job_ids))
    def fuzz(case):
        kwargs = case.as_transport_kwargs(base_url=plugin.url)
        url = kwargs.pop("url")
        status = check(core, plugin, kwargs.pop("method").upper(), url[len(plugin.url):], **kwargs)
        statuses[status] = statuses.get(status, 0) + 1
        documented(case, status)

    fuzz()
    print("%s: %d requests in %.1f s, plugin answers %s" % (name, sum(statuses.values()), time.monotonic() - began,
                                                            statuses))


def test_methods_a_route_lacks(api, core, plugin):
    schema, _, job_ids = api
    failures = []
    for path, item in schema.raw_schema["paths"].items():
        concrete = path.replace("{id}", job_ids[0]).replace("{name}", "pause")
        for method in METHODS:
            if method.lower() not in item:
                try:
                    check(core, plugin, method, concrete, data=b"{}")
                except AssertionError as error:
                    failures.append("%s %s: %s" % (method, path, error))
    assert not failures, "\n\n".join(failures)


# -- what the fuzz found, kept as explicit requests -----------------------------------------------

# A job id was put into the URI forwarded to the core unescaped: "?" turned /jobs/? into GET /jobs,
# whose list the plugin then read as one job (DELETE: 500 "'list' object has no attribute 'get'").
REGRESSIONS = [
    pytest.param("DELETE", "/jobs/%3F", id="delete-job-question-mark"),
    pytest.param("DELETE", ROOT + "/jobs/%3F", id="delete-root-job-question-mark"),
    pytest.param("GET", "/jobs/%3F", id="get-job-question-mark"),
    pytest.param("POST", "/jobs/%3F/pause", id="pause-job-question-mark"),
]


@pytest.mark.parametrize("method, path", REGRESSIONS)
def test_openapi_fuzz_regression(core, plugin, method, path):
    check(core, plugin, method, path)
