"""The OpenAPI description covers every route the plugin registers, and the body the parser reads."""
import json
import re

import pytest

from advanced_rest import openapi, routes, settings, web
from advanced_rest.errors import AdvancedRestError
from advanced_rest.dicomize import request
from advanced_rest.jobs import model
from advanced_rest.jobs.changes import ChangeFeed
from advanced_rest.jobs.core import CoreJobs
from local_jobs import LocalJobs
from advanced_rest.jobs.routes import Core, JobsApi


class FakeTransport:
    """Keeps what the router registers and answers, instead of handing it to Orthanc."""

    def __init__(self):
        self.callbacks, self.answers = {}, []

    def transport(self):
        return web.Transport(answer=lambda output, body, mime: self.answers.append(body),
                             send_status=lambda output, status, body, headers: self.answers.append(status),
                             method_not_allowed=lambda output, allowed: None,
                             register=lambda pattern, callback: self.callbacks.__setitem__(pattern, callback))


class Unused:
    """A feature object whose handlers are registered, never called here."""

    def __call__(self, request):
        raise AssertionError("not called")

    own = core = __call__


def _served(config):
    """(registered [(pattern, methods)], the document {Root}/openapi.json answers) for `config`."""
    fake = FakeTransport()
    router = web.Router(fake.transport())
    jobs = JobsApi(LocalJobs(), Core(None, None, None), None, ChangeFeed())  # never started: no thread, no Orthanc
    routes.serve(router, config, Unused(), jobs, Unused(), Unused())
    fake.callbacks[re.escape(config.root) + "/openapi.json"](None, config.root + "/openapi.json", method="GET")
    return router.registered, json.loads(fake.answers[-1])


def test_paths_name_their_parameters():
    assert openapi.path_of(r"/advanced\-rest/jobs/([^/]+)/([^/]+)") == "/advanced-rest/jobs/{id}/{name}"


@pytest.mark.parametrize("config", [settings.Settings(), settings.Settings(root="/x/y", serve_core_routes=False)],
                         ids=["defaults", "own-root-only"])
def test_every_registered_route_is_described(config):
    registered, document = _served(config)
    assert (re.escape(config.root) + "/openapi.json", ["GET"]) in registered
    described = {path: sorted(method.upper() for method in item) for path, item in document["paths"].items()}
    assert described == {openapi.path_of(pattern): methods for pattern, methods in registered}
    for path, item in document["paths"].items():
        for operation in item.values():
            assert operation["summary"] and operation["responses"], path


def test_the_create_dicom_schema_is_the_parsers_fields():
    properties = openapi.SCHEMAS["CreateDicom"]["properties"]
    assert list(properties) == list(request.FIELDS)
    for name, field in request.FIELDS.items():
        kinds = field.json_type if isinstance(field.json_type, tuple) else (field.json_type,)
        schema = properties[name]
        assert [one["type"] for one in schema.get("oneOf", [schema])] == list(kinds), name
        assert schema.get("default") == field.default and schema["description"] == field.description


@pytest.mark.parametrize("name, field", request.FIELDS.items(), ids=list(request.FIELDS))
def test_the_parser_refuses_a_field_of_another_type(name, field):
    # Each field's declared type is the one the parser checks (Tags and Content answer the core's codes).
    wrong = 1.5  # a JSON number: no field is declared one
    with pytest.raises(AdvancedRestError) as refused:
        request.parse(json.dumps({"Tags": {}, name: wrong}).encode())
    assert refused.value.http_status == 400
    if field.default is not None:
        request.parse(json.dumps({"Tags": {}, name: field.default}).encode())


# ---- the documented statuses are the ones answered ------------------------------------------------

import base64
import io

from PIL import Image

from advanced_rest import errors
from advanced_rest.create_dicom.route import CreateDicom, Services
from advanced_rest.dicomize.dictionary import Dictionary
from advanced_rest.errors import OrthancError

def _gif():
    data = io.BytesIO()
    Image.new("RGB", (2, 2)).save(data, format="GIF")
    return "data:image/gif;base64," + base64.b64encode(data.getvalue()).decode()


def _core_failing(code):
    def fail(*args):
        raise OrthancError("core", code=code)
    return fail


class FullEngine(LocalJobs):
    def submit(self, *args, **kwargs):
        raise errors.QueueFull("2 plugin jobs are already pending (AdvancedRest.MaxPendingJobs)")


def _answers(config, store=None, engine=None, core=None, loaded=None, core_jobs=None):
    """(callbacks by route pattern, statuses answered, the served document) for fakes failing as told."""
    fake = FakeTransport()
    router = web.Router(fake.transport())
    core = core or Core(lambda uri: b"[]", lambda uri, body: b"{}", lambda uri: None)
    engine = engine or LocalJobs()
    core_jobs = core_jobs or CoreJobs(lambda: b"[]", lambda path: (404, b"{}"), delays=())
    jobs = JobsApi(engine, core, core_jobs, ChangeFeed(), loaded=loaded)
    services = Services(rest_get_json=None, rest_post=store or (lambda uri, body: b'{"ID": "i"}'),
                        rest_delete=lambda uri: None, default_encoding=lambda: "Latin1")
    routes.serve(router, config, CreateDicom(config, Dictionary(), services, engine), jobs, Unused(), Unused())
    fake.callbacks[re.escape(config.root) + "/openapi.json"](None, config.root + "/openapi.json", method="GET")
    return fake.callbacks, fake.answers, json.loads(fake.answers.pop())


LIMITED = settings.Settings(max_request_bytes=200)
JOB_ROUTES = [("GET", "/jobs", ()), ("GET", "/jobs/{id}", ("j",)), ("DELETE", "/jobs/{id}", ("j",)),
              ("GET", "/jobs/{id}/{name}", ("j", "wait")), ("POST", "/jobs/{id}/{name}", ("j", "pause")),
              ("DELETE", "/jobs/{id}/{name}", ("j", "archive"))]

# (what fails, fakes, METHOD path, groups, body, the status it answers)
FAILURES = [
    ("body over MaxRequestBytes", {}, "POST", "/tools/create-dicom", (), {"Tags": {"PatientName": "x" * 300}}, 413),
    ("content that cannot be converted", {}, "POST", "/tools/create-dicom", (), {"Tags": {}, "Content": _gif()}, 415),
    ("full queue", {"engine": FullEngine()}, "POST", "/tools/create-dicom", (),
     {"Tags": {}, "Asynchronous": True}, 503),
    ("Orthanc's database unavailable while storing", {"store": _core_failing(36)}, "POST", "/tools/create-dicom", (),
     {"Tags": {}}, 503),
    ("the disk full", {"store": _core_failing(19)}, "POST", "/tools/create-dicom", (), {"Tags": {}}, 500),
] + [("saved jobs not loaded yet", {"loaded": lambda timeout: False}, method, path, groups, None, 503)
     for method, path, groups in JOB_ROUTES + [("GET", "/jobs/changes", ())]] + [
    ("Orthanc's database unavailable", {"core": Core(*[_core_failing(36)] * 3),
                                        "core_jobs": CoreJobs(_core_failing(36), _core_failing(36), delays=())},
     method, path, groups, None, 503)
    for method, path, groups in JOB_ROUTES]
PLUGIN_ID = model.new_job_id()  # at the core's paths the plugin serves only ids of its own form


@pytest.mark.parametrize("what, fakes, method, path, groups, body, status", FAILURES,
                         ids=["%s %s: %s" % (f[2], f[3], f[0]) for f in FAILURES])
@pytest.mark.parametrize("root", ["", LIMITED.root])
def test_what_a_route_answers_is_documented(monkeypatch, what, fakes, method, path, groups, body, status, root):
    monkeypatch.setattr("advanced_rest.jobs.routes.LOAD_WAIT", 0)
    callbacks, answered, document = _answers(LIMITED, **fakes)
    if path == "/jobs/changes" and not root:
        return  # the plugin's own route only
    if not root and "{id}" in path:
        if what == "Orthanc's database unavailable":
            return  # a core job's id at the core's paths reaches the core's own handlers, not the plugin
        groups = (PLUGIN_ID,) + groups[1:]
    uri = root + path.replace("{id}", groups[0] if groups else "").replace("{name}", groups[-1] if groups else "")
    patterns = [pattern for pattern in callbacks if re.fullmatch(pattern, uri)]
    assert patterns, "no route serves %s" % uri
    request = {"method": method, "groups": groups}
    if body is not None:
        request["body"] = json.dumps(body).encode()
    callbacks[patterns[0]](None, uri, **request)
    assert answered == [status], what
    responses = document["paths"][root + path][method.lower()]["responses"]
    assert str(status) in responses, "%s %s answers %d for %s: not documented" % (method, path, status, what)


def test_a_status_is_described_by_the_classes_declared_for_it():
    responses = openapi.OPERATIONS["/tools/create-dicom"]["post"]["responses"]
    assert errors.UnsupportedFormat.meaning() == responses["415"]["description"]
    assert errors.RequestTooLarge.meaning() == responses["413"]["description"]
    assert "Retry-After" in responses["503"]["headers"]
    assert errors.QueueFull.meaning() in responses["503"]["description"]
    assert errors.DatabaseUnavailable.meaning() in responses["503"]["description"]
    for item in openapi.OPERATIONS.values():
        for operation in item.values():
            assert set(operation["responses"]) >= {"200", "500"}  # web.Router answers 500 for anything unexpected
