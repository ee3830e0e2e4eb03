"""GET {Root}/openapi.json: an OpenAPI 3 description of every route the plugin registered.

Each operation declares the error classes (errors.py) its handler can raise; its error answers are
derived from them: one response per HTTP status the classes answer, described by their meanings.
"""
from . import __version__
from . import errors as e
from .dicomize.request import FIELDS
from .web import route_path

_TINY_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAAAAABX3VL4AAAADklEQVR4nGNgYGBgYGAAAAAFAAG"
             "jPs8AAAAASUVORK5CYII=")

_ERROR = {"$ref": "#/components/schemas/Error"}
_JOB = {"$ref": "#/components/schemas/Job"}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# What every route can answer: the router turns anything unexpected into a 500 (web.Router).
ROUTER_ERRORS = (e.AdvancedRestError,)
# A call into the core's REST API: its own error (with the status the core gives it), or its database
# unreachable (Orthanc's 503; the cluster's PostgreSQL answers the same).
CORE_ERRORS = (e.OrthancError, e.DatabaseUnavailable)
# Every jobs route waits for the saved jobs to be loaded first (JobsApi), and reads the core's jobs.
# Under {Root}, what reaches the core's jobs or capabilities is asked of the site's rules first (access.py).
ACCESS_ERRORS = (e.AccessDenied, e.AccessUnknown)
JOBS_ERRORS = (e.JobsLoading, e.CoreJobsUnavailable, e.OutputsBusy) + ACCESS_ERRORS + CORE_ERRORS
CREATE_DICOM_ERRORS = (
    e.BadRequest, e.BadFileFormat, e.ParameterOutOfRange, e.LimitExceeded, e.BadParameterType, e.UnknownDicomTag,
    e.NotString, e.OverrideTag, e.UseContent, e.NoPayload, e.UseDataUriScheme, e.InexistentParent,
    e.ParentIsInstance, e.RequestTooLarge, e.UnsupportedFormat,
    e.QueueFull, e.JobsLoading,  # Asynchronous: a job saved before it is answered
) + ACCESS_ERRORS + CORE_ERRORS


def error_responses(raises):
    """The OpenAPI responses of an operation whose handler raises `raises` (error classes), router's included."""
    by_status = {}
    for cls in tuple(raises) + ROUTER_ERRORS:
        by_status.setdefault(cls.declared_status(), []).append(cls)
    responses = {}
    for status, classes in sorted(by_status.items()):
        meanings = list(dict.fromkeys(cls.meaning() for cls in classes))
        response = {"description": meanings[0] if len(meanings) == 1 else "\n".join("- " + m for m in meanings)}
        if status != e.MethodNotAllowed.status:  # Orthanc's 405 has an Allow header and no body
            response["content"] = {"application/json": {"schema": _ERROR}}
        header = "Allow" if status == e.MethodNotAllowed.status else \
            "Retry-After" if any(getattr(cls, "retry_after", None) for cls in classes) else None
        if header:
            response["headers"] = {header: {"schema": {"type": "string"}, "description": (
                "the methods this route has" if header == "Allow" else "seconds to wait before trying again")}}
        responses[str(status)] = response
    return responses


def _operation(summary, ok, raises=(), **more):
    """One operation: its 200 answer `ok`, and the error answers derived from `raises`."""
    operation = {"summary": summary}
    operation.update(more)
    operation["responses"] = dict({"200": ok}, **error_responses(raises))
    return operation


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

def _redirect(operation):
    """`operation` that sends the client on first: 301 from Orthanc 1.10, 307 from 1.12 (its Redirect)."""
    for status in ("301", "307"):
        operation["responses"][status] = {"description": "to the page's own path"}
    return operation


_PAGE = {"description": "the page's file, with a strict Content-Security-Policy",
         "content": {"text/html": {"schema": {"type": "string"}}}}

CREATE_DICOM = {"post": _operation(
    "Create a DICOM instance (or a series) from tags and an image, images (MultiFrame), a video, PDF or 3D model",
    _json({"type": "object"}, "the stored instance ({ID, Path, ParentPatient, ParentStudy, ParentSeries, Status}), "
                              "series ({ID, Path, Status}) or job ({ID, Path})"),
    CREATE_DICOM_ERRORS,
    description="The core's body and answer; beyond it: Asynchronous/Synchronous and Priority (a job), "
                "Strict (a conformant IOD), MultiFrame (a Content array of images -> one Multi-frame Secondary "
                "Capture instance, FrameTime/CineRate from Tags), and video/mp4 (H.264, HEVC) or video/mpeg "
                "(MPEG-2) data URIs stored as they come (a Video Photographic, Endoscopic with Modality ES, or "
                "Microscopic with GM instance; 415 for a profile or level DICOM has no transfer syntax for), "
                "image/jp2 (a JPEG 2000 codestream or JP2 file) kept as it comes (JPEG 2000 Lossless Only for the "
                "5/3 wavelet, JPEG 2000 for the 9/7). Sendable by default: where the request, its parent and the "
                "content leave SOPClassUID or Modality out, Secondary Capture (Raw Data without an image) and OT. "
                "The body may also be multipart/related (RFC 2387; type=application/json): the JSON request as "
                "its first part (or the one `start` names), whose Content names the other parts as cid:ID "
                "(their Content-ID), each file unencoded with its own Content-Type.",
    requestBody={"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/CreateDicom"},
        "examples": {
            "image": {"value": {"Tags": {"PatientName": "OpenAPI^Example", "Modality": "OT"}, "Content": _TINY_PNG}},
            "series-as-job": {"value": {"Tags": {"PatientName": "OpenAPI^Series"}, "Content": [_TINY_PNG, _TINY_PNG],
                                        "Asynchronous": True}},
            "strict": {"value": {"Tags": {}, "Content": _TINY_PNG, "Strict": True}},
            "multi-frame": {"value": {"Tags": {"PatientName": "OpenAPI^Cine", "CineRate": "25"},
                                      "Content": [_TINY_PNG, _TINY_PNG, _TINY_PNG], "MultiFrame": True}},
        }}}})}

_OBJECT = _json({"type": "object"}, "{}")

# Route suffix (after "" or {Root}) -> path item; each operation declares the error classes it raises.
OPERATIONS = {
    "/tools/create-dicom": CREATE_DICOM,
    "/system": {"get": _operation("The plugin's name and version, and the Python and Python-plugin versions",
                                  _json({"type": "object"}, "versions"))},
    "/metrics": {"get": _operation("The plugin's metric families", _TEXT, ACCESS_ERRORS)},
    "/tools/metrics-prometheus": {"get": _operation("The core's metrics followed by the plugin's families", _TEXT,
                                                    (e.OrthancError,))},
    "/openapi.json": {"get": _operation("This description", _json({"type": "object"}, "OpenAPI 3"))},
    "/jobs": {"get": _operation(
        "Jobs of the core and of the plugin", _json({"type": "array", "items": {}}, "ids, or jobs with expand"),
        (e.BadRequest,) + JOBS_ERRORS,
        parameters=[_query("expand", "whole jobs rather than ids", example=""),
                    _query("state", "comma-separated states", example="Success,Failure"),
                    _query("type", "comma-separated job types", example="CreateDicom")])},
    "/jobs/changes": {"get": _operation(
        "Every state or progress change of every job after a sequence number",
        _json({"$ref": "#/components/schemas/Changes"}, "changes"), (e.BadRequest, e.JobsLoading,
                                                                     e.DatabaseUnavailable) + ACCESS_ERRORS,
        parameters=[_query("since", "the Last of the previous answer", "integer", 0),
                    _query("timeout", "seconds to wait for a change", "number", 0)])},
    "/jobs/{id}": {
        "get": _operation("One job (core or plugin)", _json(_JOB, "the job"), (e.UnknownJob,) + JOBS_ERRORS,
                          parameters=[_ID]),
        "delete": _operation("Forget a finished job", _OBJECT,
                             (e.UnknownJob, e.IllegalTransition, e.MethodNotAllowed) + JOBS_ERRORS,
                             parameters=[_ID])},
    # name "" or ".." reaches /jobs/{id} or /jobs once Orthanc normalised the path: 405 for POST and DELETE.
    "/jobs/{id}/{name}": {
        "get": _operation("Wait for a job (name: wait, with ?timeout=S), or get one of its outputs",
                          {"description": "the job (wait), or the output's bytes"},
                          (e.BadRequest, e.UnknownJob) + JOBS_ERRORS,
                          parameters=[_ID, _NAME, _query("timeout", "for wait: seconds (default 30)", "number", 1)]),
        "post": _operation("cancel, pause, resume or resubmit a job", _OBJECT,
                           (e.BadRequest, e.IllegalTransition, e.UnknownJob, e.MethodNotAllowed)
                           + JOBS_ERRORS,
                           parameters=[_ID, _NAME]),
        "delete": _operation("Forget one output of a job", _OBJECT, (e.UnknownJob, e.MethodNotAllowed) + JOBS_ERRORS,
                             parameters=[_ID, _NAME])},
    "/webhooks": {"get": _operation("The webhook endpoints configured (AdvancedRest.Webhooks), without secrets",
                                    _json({"type": "array", "items": {"type": "object"}}, "endpoints"), ACCESS_ERRORS)},
    "/webhooks/deliveries": {"get": _operation(
        "Webhook deliveries, oldest first, with their attempts and last error",
        _json({"type": "object", "properties": {"Deliveries": {"type": "array", "items": {"type": "object"}},
                                                "Last": {"type": "integer"}}}, "deliveries"),
        (e.BadRequest, e.DatabaseUnavailable) + ACCESS_ERRORS,
        parameters=[_query("state", "pending, delivered or failed", example="failed"),
                    _query("job", "a job id"),
                    _query("since", "the Last of the previous answer", "integer", 0),
                    _query("limit", "at most this many (1000 at most)", "integer", 100)])},
    "/webhooks/deliveries/{id}/redeliver": {"post": _operation(
        "Send a delivery again (its attempts and age counted afresh)", _json({"type": "object"}, "the delivery"),
        (e.UnknownResource, e.DeliveryBusy, e.DatabaseUnavailable) + ACCESS_ERRORS,
        parameters=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                     "description": "a delivery's ID"}])},
    "/ui": {"get": _redirect(_operation("The jobs page: sent on to {Root}/ui/index.html (200: the page, once followed)",
                                        _PAGE))},
    "/ui/index.html": {"get": _operation("The jobs page: every job live, its actions, webhook deliveries", _PAGE)},
    "/ui/app.js": {"get": _operation("The jobs page's script", _PAGE)},
    "/ui/style.css": {"get": _operation("The jobs page's style", _PAGE)},
    "/webhooks/test": {"post": _operation(
        "Send a Test event to an endpoint now, once", _json({"type": "object"}, "{Endpoint, EventId, Delivered, "
                                                                                "Status, Error}"),
        (e.BadRequest, e.UnknownResource, e.DeliveryBusy) + ACCESS_ERRORS,
        requestBody={"required": False, "content": {"application/json": {
            "schema": {"type": "object", "properties": {"Endpoint": {"type": "string"}}}}}})},
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
        ("ErrorDetails", "string"), ("Content", "object"),
        # a job that AdvancedRest.Retries runs again: its run (1 for the first) and, in Retry, when the next is
        ("Attempt", "integer"), ("NextAttempt", "string"))}},
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
