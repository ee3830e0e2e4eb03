"""create-dicom's store through Orthanc's HTTP server (storing.HttpStore) and its fallback to the SDK."""
import datetime
import io
import json
import threading
import uuid

import pydicom
import pytest

from advanced_rest import access, settings, web
from advanced_rest.create_dicom import storing
from advanced_rest.create_dicom.route import CreateDicom, Services
from advanced_rest.dicomize import builder, request
from advanced_rest.dicomize.dictionary import Dictionary
from advanced_rest.errors import OrthancError
from advanced_rest.metrics.received import orthanc_id

from test_builder import png

ANSWER = {"ID": "i1", "Path": "/instances/i1", "ParentPatient": "p", "ParentStudy": "st", "ParentSeries": "se",
          "Status": "Success"}
NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
HEADERS = {"authorization": "Basic Y2Fyb2w6c2VjcmV0", "content-type": "application/json", "host": "orthanc",
           "x-forwarded-for": "10.1.2.3", "content-length": "12"}


class Loopback:
    """host.Loopback.request faked: answers `status, body`, or raises `error`; records what it was sent."""

    def __init__(self, status=200, body=None, error=None):
        self.status, self.body, self.error, self.sent = status, body, error, []

    def __call__(self, method, path, headers, body=None, limit=None):
        self.sent.append((method, path, headers, body))
        if self.error is not None:
            raise self.error
        return self.status, json.dumps(ANSWER).encode() if self.body is None else self.body, ""


def _store(loopback, permits=2, active=True):
    http_store = storing.HttpStore(loopback, access.identity, permits)
    http_store.active = active
    return http_store


def _sdk(calls):
    def post(uri, data):
        calls.append((uri, data))
        return json.dumps(dict(ANSWER, ID="sdk")).encode()
    return post


def test_it_posts_the_file_as_the_requester_and_answers_orthancs_json():
    loopback = Loopback()
    assert _store(loopback).store(b"DICM", HEADERS) == ANSWER
    method, path, headers, body = loopback.sent[0]
    assert (method, path, body) == ("POST", "/instances", b"DICM")
    # who asks is carried; what belongs to the connection or the client's body is not
    assert headers == {"authorization": HEADERS["authorization"], "x-forwarded-for": "10.1.2.3",
                       "Content-Type": "application/dicom"}


@pytest.mark.parametrize("loopback, kind", [
    (Loopback(status=401), "refused"),
    (Loopback(status=403), "refused"),
    (Loopback(error=ConnectionError("refused")), "unreachable"),
    (Loopback(error=TimeoutError()), "unreachable"),
    (Loopback(status=400, body=b""), "undescribed"),  # HttpDescribeErrors false: no OrthancStatus to raise
], ids=["401", "403", "connection-refused", "timeout", "undescribed-error"])
def test_what_stored_nothing_falls_back_to_the_sdk(loopback, kind):
    calls = []
    with pytest.raises(storing.NotStored) as caught:
        _store(loopback).store(b"DICM", HEADERS)
    assert caught.value.args == (kind,)
    assert storing.store_with(_sdk(calls), _store(loopback), HEADERS)(b"DICM")["ID"] == "sdk"
    assert calls == [("/instances", b"DICM")]


def test_an_error_orthanc_describes_is_raised_as_the_sdk_raises_it():
    loopback = Loopback(status=400, body=json.dumps({"HttpStatus": 400, "OrthancStatus": 15}).encode())
    calls = []
    with pytest.raises(OrthancError) as caught:
        storing.store_with(_sdk(calls), _store(loopback), HEADERS)(b"DICM")
    assert (caught.value.code, caught.value.http_status, caught.value.details) == (15, 400, "/instances")
    assert calls == []  # not tried again through the SDK: Orthanc refused this file


def test_inactive_off_or_without_headers_the_sdk_stores():
    for http_store, headers in ((_store(Loopback(), active=False), HEADERS), (_store(Loopback(), permits=0), HEADERS),
                                (None, HEADERS), (None, None)):
        calls = []
        assert storing.store_with(_sdk(calls), http_store, headers)(b"DICM")["ID"] == "sdk"
        assert calls == [("/instances", b"DICM")]


def test_beyond_its_permits_a_store_does_not_wait_and_falls_back():
    entered, leave = threading.Event(), threading.Event()

    class Slow(Loopback):
        def __call__(self, *args, **kwargs):
            entered.set()
            leave.wait(10)
            return super().__call__(*args, **kwargs)

    http_store = _store(Slow(), permits=1)
    first = threading.Thread(target=http_store.store, args=(b"one", HEADERS))
    first.start()
    try:
        assert entered.wait(10)
        with pytest.raises(storing.NotStored) as caught:
            http_store.store(b"two", HEADERS)
        assert caught.value.args == ("busy",)
    finally:
        leave.set()
        first.join(10)
    assert http_store.store(b"three", HEADERS) == ANSWER  # its permit is back


def test_the_permit_comes_back_after_a_failure():
    http_store = _store(Loopback(error=ConnectionError("refused")), permits=1)
    for _ in range(3):
        with pytest.raises(storing.NotStored):
            http_store.store(b"DICM", HEADERS)


def test_a_fallback_is_logged_once_above_debug(caplog):
    http_store = _store(Loopback(status=403))
    with caplog.at_level("DEBUG", logger="advanced_rest"):
        for _ in range(3):
            with pytest.raises(storing.NotStored):
                http_store.store(b"DICM", HEADERS)
    levels = [record.levelname for record in caplog.records]
    assert levels == ["INFO", "DEBUG", "DEBUG"]
    assert all("carol" not in record.getMessage() for record in caplog.records)


def _handler(http_store, sdk_calls):
    services = Services(rest_get_json=None, rest_post=_sdk(sdk_calls), rest_delete=lambda uri: None,
                        default_encoding=lambda: "Latin1", http_store=http_store)
    return CreateDicom(settings.Settings(), Dictionary(), services)


def test_a_synchronous_request_stores_through_the_http_store_with_its_headers():
    loopback, sdk_calls = Loopback(), []
    request = web.Request("POST", "/tools/create-dicom", body=json.dumps({"Tags": {}, "Content": png("L")}).encode(),
                          headers=dict(HEADERS))
    answer = json.loads(_handler(_store(loopback), sdk_calls)(request).body)
    assert answer == ANSWER and sdk_calls == []
    assert loopback.sent[0][2]["authorization"] == HEADERS["authorization"]
    assert loopback.sent[0][3][128:132] == b"DICM"


def test_a_jobs_store_goes_through_the_sdk():
    """A job has no requester's headers when it runs (they are never saved): the SDK stores its files."""
    loopback, sdk_calls = Loopback(), []
    handler = _handler(_store(loopback), sdk_calls)
    store = handler._store_with("")  # what CreateDicom._runner gives a job
    assert store(b"DICM")["ID"] == "sdk" and loopback.sent == []


def test_a_large_file_is_left_to_the_sdk_and_the_loopback_never_asked():
    loopback = Loopback()
    http_store = _store(loopback)
    with pytest.raises(storing.NotStored) as caught:
        http_store.store(bytes(storing.LARGE_FILE), HEADERS)
    assert caught.value.args == ("large",) and loopback.sent == []
    assert http_store.store(bytes(storing.LARGE_FILE - 1), HEADERS) == ANSWER and len(loopback.sent) == 1


# ---- the received counter told what create-dicom stores (counted without a read-back) -----------------------

class Told:
    """The ReceivedCounter seam create-dicom uses (expect, stored, cancel), recorded."""

    def __init__(self, on=True):
        self.on, self.calls = on, []

    def expect(self, instance_id, modality, transfer_syntax):
        self.calls.append(("expect", instance_id, modality, transfer_syntax))
        return self.on

    def stored(self, instance_id, origin):
        self.calls.append(("stored", instance_id, origin))

    def cancel(self, instance_id):
        self.calls.append(("cancel", instance_id))


IDENTITY = builder.Identity("P", "1.2", "1.2.3", "1.2.3.4", "CT", "1.2.840.10008.1.2.1")
IDENTITY_ID = orthanc_id("P", "1.2", "1.2.3", "1.2.3.4")


def _answering(status="Success", instance_id=IDENTITY_ID, error=None):
    def post(uri, data):
        if error is not None:
            raise error
        return json.dumps(dict(ANSWER, ID=instance_id, Status=status)).encode()
    return post


def test_a_file_stored_is_told_with_the_origin_of_the_way_it_went():
    told = Told()
    storing.store_with(_answering(), None, None, told)(b"DICM", IDENTITY)
    assert told.calls == [("expect", IDENTITY_ID, "CT", "1.2.840.10008.1.2.1"), ("stored", IDENTITY_ID, "Plugins")]
    told = Told()
    loopback = Loopback(body=json.dumps(dict(ANSWER, ID=IDENTITY_ID)).encode())
    storing.store_with(_answering(), _store(loopback), HEADERS, told)(b"DICM", IDENTITY)
    assert told.calls[1:] == [("stored", IDENTITY_ID, "RestApi")]
    told = Told()  # the loopback stored nothing: the SDK did
    storing.store_with(_answering(), _store(Loopback(status=403)), HEADERS, told)(b"DICM", IDENTITY)
    assert told.calls[1:] == [("stored", IDENTITY_ID, "Plugins")]


@pytest.mark.parametrize("post", [
    _answering(status="AlreadyStored"),
    _answering(status="FilteredOut"),
    _answering(instance_id="another-id"),
], ids=["already-stored", "filtered-out", "another-id"])
def test_a_store_making_no_new_instance_of_that_id_is_cancelled(post):
    told = Told()
    storing.store_with(post, None, None, told)(b"DICM", IDENTITY)
    assert told.calls[1:] == [("cancel", IDENTITY_ID)]


def test_a_store_that_raises_is_cancelled_and_the_error_raised():
    told = Told()
    with pytest.raises(OrthancError):
        storing.store_with(_answering(error=OrthancError("/instances", code=36)), None, None, told)(b"DICM", IDENTITY)
    assert told.calls[1:] == [("cancel", IDENTITY_ID)]


def test_nothing_is_told_without_an_identity_or_once_the_counter_declines():
    told = Told()
    assert storing.store_with(_answering(), None, None, told)(b"DICM")["ID"] == IDENTITY_ID
    assert told.calls == []
    told = Told(on=False)  # metrics off
    storing.store_with(_answering(), None, None, told)(b"DICM", IDENTITY)
    assert [call[0] for call in told.calls] == ["expect"]


class ReadingOrthanc:
    """POST /instances answering as Orthanc would: the ID of the identifiers in the file, AlreadyStored again."""

    def __init__(self):
        self.stored = {}

    def post(self, uri, data):
        ds = pydicom.dcmread(io.BytesIO(data))
        instance_id = orthanc_id(ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        status = "AlreadyStored" if instance_id in self.stored else "Success"
        self.stored.setdefault(instance_id, (ds.Modality, ds.file_meta.TransferSyntaxUID))
        return json.dumps(dict(ANSWER, ID=instance_id, Status=status)).encode()

    def handler(self, told, **options):
        services = Services(rest_get_json=None, rest_post=self.post, rest_delete=lambda uri: None,
                            default_encoding=lambda: "Latin1", received=told)
        return CreateDicom(settings.Settings(**options), Dictionary(), services)


def _create(handler, body):
    return json.loads(handler(web.Request("POST", "/tools/create-dicom", body=json.dumps(body).encode())).body)


def test_create_dicom_tells_the_counter_what_orthanc_stores():
    orthanc, told = ReadingOrthanc(), Told()
    handler = orthanc.handler(told)
    answer = _create(handler, {"Tags": {"Modality": "CT"}, "Content": png("L")})
    assert told.calls == [("expect", answer["ID"], "CT", "1.2.840.10008.1.2.1"), ("stored", answer["ID"], "Plugins")]
    told.calls.clear()
    _create(handler, {"Tags": {}, "Content": [png("L"), {"Content": png("L"), "Tags": {"Modality": "MR"}}]})
    expected = [call for call in told.calls if call[0] == "expect"]
    assert [call[1] for call in expected] == list(orthanc.stored)[1:]
    assert [call[2] for call in expected] == ["OT", "OT"], "the series' Modality, its first instance's"
    assert [call[0] for call in told.calls] == ["expect", "stored"] * 2
    told.calls.clear()
    _create(handler, {"PatientName": "Flat"})  # legacy: read back
    assert told.calls == []


def test_a_request_naming_its_series_is_read_back():
    orthanc, told = ReadingOrthanc(), Told()
    body = {"Tags": {"PatientID": "P", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3",
                     "SOPInstanceUID": "1.2.3.4"}, "Force": True}
    _create(orthanc.handler(told), body)
    assert told.calls == [], "a series the request names may be another's, whose Modality is its first instance's"


def test_where_orthanc_transcodes_what_it_receives_nothing_is_told():
    assert settings.from_configuration({"IngestTranscoding": "1.2.840.10008.1.2.4.90"}).ingest_transcoding
    assert not settings.from_configuration({}).ingest_transcoding
    orthanc, told = ReadingOrthanc(), Told()
    _create(orthanc.handler(told, ingest_transcoding=True), {"Tags": {}, "Content": png("L")})
    assert told.calls == [] and len(orthanc.stored) == 1


def test_a_jobs_files_are_told_too_and_its_repeat_cancelled():
    orthanc, told = ReadingOrthanc(), Told()
    handler = orthanc.handler(told)
    seed = str(uuid.uuid4())
    parsed = request.parse(json.dumps({"Tags": {}, "Content": [png("L")] * 2}).encode())

    def run():
        runner = handler._runner(parsed, handler.environment(seed, NOW, "Latin1"), None, {"Requester": ""})
        for index in range(runner.steps()):
            runner.step(index)
    run()
    assert [call[0] for call in told.calls] == ["expect", "stored"] * 2
    assert [call[1] for call in told.calls if call[0] == "stored"] == list(orthanc.stored)
    told.calls.clear()
    run()  # run again after a restart: the same files, already stored
    assert [call[0] for call in told.calls] == ["expect", "cancel"] * 2
