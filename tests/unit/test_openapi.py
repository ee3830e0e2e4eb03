"""The OpenAPI description covers every route the plugin registers, and the body the parser reads."""
import json
import re

import pytest

from advanced_rest import openapi, routes, settings, web
from advanced_rest.errors import AdvancedRestError
from advanced_rest.dicomize import request
from advanced_rest.jobs.changes import ChangeFeed
from advanced_rest.jobs.engine import Engine
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
    jobs = JobsApi(Engine(), Core(None, None, None), None, ChangeFeed())  # never started: no thread, no Orthanc
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
