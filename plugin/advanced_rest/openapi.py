"""GET {Root}/openapi.json: an OpenAPI 3 description of every route the plugin registered."""
from . import __version__
from .dicomize.request import FIELDS
from .web import route_path

_TINY_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAAAAABX3VL4AAAADklEQVR4nGNgYGBgYGAAAAAFAAG"
             "jPs8AAAAASUVORK5CYII=")

_ERROR = {"$ref": "#/components/schemas/Error"}
_JOB = {"$ref": "#/components/schemas/Job"}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes):
    meanings = {400: "a mistake in the request", 404: "no such job or output", 405: "method not allowed here",
                413: "a body over AdvancedRest.MaxRequestBytes",
                500: "content that cannot be converted, or an error inside Orthanc",
                503: "AdvancedRest.MaxPendingJobs jobs already pending (see Retry-After), or the database unavailable"}
    return {str(code): _json(_ERROR, meanings[code]) for code in codes}


def _query(name, description, kind="string", example=None):
    parameter = {"name": name, "in": "query", "required": False, "description": description,
                 "schema": {"type": kind}}
    if example is not None:
        parameter["example"] = example
    return parameter


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "a job id"}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "GET: wait, or an output name; POST: cancel, pause, resume or resubmit; DELETE: an output"}
_TEXT = {"description": "Prometheus text format (OpenMetrics when Accept asks for it)",
         "content": {"text/plain": {"schema": {"type": "string"}}}}

CREATE_DICOM = {"post": {
    "summary": "Create a DICOM instance (or a series) from tags and an image, PDF or 3D model",
    "description": "The core's body and answer; beyond it: Asynchronous/Synchronous and Priority (a job), "
                   "Strict (a conformant IOD).",
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/CreateDicom"},
        "examples": {
            "image": {"value": {"Tags": {"PatientName": "OpenAPI^Example", "Modality": "OT"}, "Content": _TINY_PNG}},
            "series-as-job": {"value": {"Tags": {"PatientName": "OpenAPI^Series"}, "Content": [_TINY_PNG, _TINY_PNG],
                                        "Asynchronous": True}},
            "strict": {"value": {"Tags": {}, "Content": _TINY_PNG, "Strict": True}},
        }}}},
    "responses": dict({"200": _json({"type": "object"}, "the stored instance ({ID, Path, ParentPatient, "
                                     "ParentStudy, ParentSeries, Status}), series ({ID, Path, Status}) or job "
                                     "({ID, Path})")}, **_errors(400, 413, 500, 503)),
}}

# Route suffix (after "" or {Root}) -> path item.
OPERATIONS = {
    "/tools/create-dicom": CREATE_DICOM,
    "/system": {"get": {"summary": "The plugin's name and version, and the Python and Python-plugin versions",
                        "responses": {"200": _json({"type": "object"}, "versions")}}},
    "/metrics": {"get": {"summary": "The plugin's metric families", "responses": {"200": _TEXT}}},
    "/tools/metrics-prometheus": {"get": {"summary": "The core's metrics followed by the plugin's families",
                                          "responses": {"200": _TEXT}}},
    "/openapi.json": {"get": {"summary": "This description", "responses": {"200": _json({"type": "object"},
                                                                                         "OpenAPI 3")}}},
    "/jobs": {"get": {
        "summary": "Jobs of the core and of the plugin",
        "parameters": [_query("expand", "whole jobs rather than ids", example=""),
                       _query("state", "comma-separated states", example="Success,Failure"),
                       _query("type", "comma-separated job types", example="CreateDicom")],
        "responses": dict({"200": _json({"type": "array", "items": {}}, "ids, or jobs with expand")},
                          **_errors(400))}},
    "/jobs/changes": {"get": {
        "summary": "Every state or progress change of every job after a sequence number",
        "parameters": [_query("since", "the Last of the previous answer", "integer", 0),
                       _query("timeout", "seconds to wait for a change", "number", 0)],
        "responses": dict({"200": _json({"$ref": "#/components/schemas/Changes"}, "changes")}, **_errors(400))}},
    "/jobs/{id}": {
        "get": {"summary": "One job (core or plugin)", "parameters": [_ID],
                "responses": dict({"200": _json(_JOB, "the job")}, **_errors(404))},
        "delete": {"summary": "Forget a finished job", "parameters": [_ID],
                   "responses": dict({"200": _json({"type": "object"}, "{}")}, **_errors(400, 404, 405))}},
    "/jobs/{id}/{name}": {
        "get": {"summary": "Wait for a job (name: wait, with ?timeout=S), or get one of its outputs",
                "parameters": [_ID, _NAME, _query("timeout", "for wait: seconds (default 30)", "number", 1)],
                "responses": dict({"200": {"description": "the job (wait), or the output's bytes"}},
                                  **_errors(400, 404))},
        "post": {"summary": "cancel, pause, resume or resubmit a job", "parameters": [_ID, _NAME],
                 "responses": dict({"200": _json({"type": "object"}, "{}")}, **_errors(400))},
        "delete": {"summary": "Forget one output of a job", "parameters": [_ID, _NAME],
                   "responses": dict({"200": _json({"type": "object"}, "{}")}, **_errors(404))}},
}


def _property(field):
    """The JSON Schema of one field of the create-dicom body (dicomize.request.FIELDS)."""
    kinds = field.json_type if isinstance(field.json_type, tuple) else (field.json_type,)
    schemas = [{"type": kind, "items": {}} if kind == "array" else {"type": kind} for kind in kinds]
    schema = dict(schemas[0]) if len(schemas) == 1 else {"oneOf": schemas}
    schema["description"] = field.description
    if field.default is not None:
        schema["default"] = field.default
    return schema


SCHEMAS = {
    "Error": {"type": "object", "description": "The core's error body",
              "properties": {name: {"type": kind} for name, kind in (
                  ("HttpError", "string"), ("HttpStatus", "integer"), ("Message", "string"), ("Method", "string"),
                  ("OrthancError", "string"), ("OrthancStatus", "integer"), ("Uri", "string"),
                  ("Details", "string"))}},
    "Job": {"type": "object", "properties": {name: {"type": kind} for name, kind in (
        ("ID", "string"), ("Type", "string"), ("State", "string"), ("Progress", "integer"), ("Priority", "integer"),
        ("CreationTime", "string"), ("CompletionTime", "string"), ("Timestamp", "string"),
        ("EffectiveRuntime", "number"), ("ErrorCode", "integer"), ("ErrorDescription", "string"),
        ("ErrorDetails", "string"), ("Content", "object"))}},
    "Changes": {"type": "object", "properties": {"Changes": {"type": "array", "items": {"type": "object"}},
                                                 "Last": {"type": "integer"}, "Done": {"type": "boolean"}}},
    "CreateDicom": {"type": "object", "properties": {name: _property(field) for name, field in FIELDS.items()}},
}


def path_of(pattern):
    """The OpenAPI path of a registered route pattern: /jobs/([^/]+) -> /jobs/{id}."""
    return route_path(pattern, ("{id}", "{name}"))


def document(registered, root):
    """The OpenAPI document of `registered` [(pattern, methods)] under the plugin's `root`.

    Raises:
        KeyError: for a registered route or method this module does not describe.
    """
    paths = {}
    for pattern, methods in registered:
        path = path_of(pattern)
        suffix = path[len(root):] if path.startswith(root + "/") else path
        item = OPERATIONS[suffix]
        paths[path] = {method.lower(): item[method.lower()] for method in methods}
    return {
        "openapi": "3.0.3",
        "info": {"title": "advanced-rest", "version": __version__,
                 "description": "Orthanc's REST API, extended by the advanced-rest plugin"},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
