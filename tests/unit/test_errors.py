import json

import pytest

from advanced_rest import errors, web

SUBCLASSES = [
    (errors.BadRequest, 400, 8, "Bad request"),
    (errors.BadFileFormat, 400, 15, "Bad file format"),
    (errors.ParameterOutOfRange, 400, 3, "Parameter out of range"),
    (errors.LimitExceeded, 400, 3, "Parameter out of range"),
    (errors.BadParameterType, 400, 5, "Bad type for a parameter"),
    (errors.UnknownDicomTag, 400, 27, "Unknown DICOM tag"),
    (errors.UnsupportedFormat, 415, 3000, "Unsupported media type"),
    (errors.UnknownResource, 404, 17, "Unknown resource"),
    (errors.UnknownJob, 404, 7, "Accessing an inexistent item"),
    (errors.IllegalTransition, 400, 8, "Bad request"),
    (errors.Unavailable, 503, 3, "Parameter out of range"),
    (errors.QueueFull, 503, 3, "Parameter out of range"),
    (errors.JobsLoading, 503, 3, "Parameter out of range"),
    (errors.DeliveryBusy, 503, 3, "Parameter out of range"),
    (errors.CoreJobsUnavailable, 503, 3, "Parameter out of range"),
    (errors.AccessUnknown, 503, 3, "Parameter out of range"),
    (errors.OutputsBusy, 503, 3, "Parameter out of range"),
    (errors.AccessDenied, 403, 45, "Access to a resource is forbidden"),
    (errors.CrossSiteRefused, 403, 45, "Access to a resource is forbidden"),
    (errors.DatabaseUnavailable, 503, 36,
     "The database is currently not available (probably a transient situation)"),
    (errors.RequestTooLarge, 413, 3, "Parameter out of range"),
    (errors.NotString, 400, 2019, "Only string values are supported when creating DICOM instances"),
    (errors.OverrideTag, 400, 2020, "Trying to override a value inherited from a parent module"),
    (errors.UseContent, 400, 2021, 'Use "Content" to inject an image into a new DICOM instance'),
    (errors.NoPayload, 400, 2022, "No payload is present for one instance in the series"),
    (errors.UseDataUriScheme, 400, 2023,
     "The payload of the DICOM instance must be specified according to Data URI scheme"),
    (errors.InexistentParent, 400, 2024, "Trying to attach a new DICOM instance to an inexistent resource"),
    (errors.ParentIsInstance, 400, 2025,
     "Trying to attach a new DICOM instance to an instance (must be a series, study or patient)"),
]


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_table_covers_every_subclass():
    covered = {row[0] for row in SUBCLASSES} | {errors.OrthancError, errors.MethodNotAllowed}
    assert set(_all_subclasses(errors.AdvancedRestError)) == covered


@pytest.mark.parametrize("cls, status, code, message", SUBCLASSES, ids=lambda v: getattr(v, "__name__", None))
def test_error_body_has_the_core_shape(cls, status, code, message):
    body = json.loads(web.error_body(cls("what went wrong"), "POST", "/tools/create-dicom"))
    assert body == {
        "Details": "what went wrong",
        "HttpError": errors.HTTP_REASONS[status],
        "HttpStatus": status,
        "Message": message,
        "Method": "POST",
        "OrthancError": message,
        "OrthancStatus": code,
        "Uri": "/tools/create-dicom",
    }


def test_orthanc_code_takes_the_status_the_core_gives_it():
    error = errors.OrthancError(code=2018)
    assert (error.http_status, error.message) == (500, "Cannot store an instance")
    assert "Details" not in json.loads(web.error_body(errors.OverrideTag(), "POST", "/x"))


def test_the_docstring_tree_names_exactly_the_classes():
    tree = errors.__doc__.split("\n\n")[1]
    named = {line.replace("│", " ").replace("├──", " ").replace("└──", " ").split()[0]
             for line in tree.splitlines() if line.strip()}
    assert named == {cls.__name__ for cls in _all_subclasses(errors.AdvancedRestError)} | {"AdvancedRestError"}


@pytest.mark.parametrize("cls", [errors.AdvancedRestError] + list(_all_subclasses(errors.AdvancedRestError)),
                         ids=lambda cls: cls.__name__)
def test_each_class_declares_the_status_and_meaning_it_answers(cls):
    # openapi.py documents a route's answers from these two: they must be what an instance answers.
    assert cls.__doc__ and cls.meaning()
    if cls is not errors.MethodNotAllowed:
        assert cls("x").http_status == cls.declared_status()


def test_unknown_code_is_a_server_error():
    assert errors.OrthancError(code=123456).http_status == 500


def test_method_not_allowed_carries_allow():
    error = errors.MethodNotAllowed("GET")
    assert (error.http_status, error.allowed) == (405, "GET")
