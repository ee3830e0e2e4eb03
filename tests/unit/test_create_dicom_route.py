"""The create-dicom handler with Orthanc's services faked: storing is all or nothing."""
import json

import pytest

from advanced_rest import settings, web
from advanced_rest.create_dicom.route import CreateDicom, Services
from advanced_rest.dicomize.dictionary import Dictionary
from advanced_rest.errors import OrthancError

from test_builder import png


class FakeOrthanc:
    """Stores instances until `fail_at` (1-based), then refuses like a full disk."""

    def __init__(self, fail_at=None):
        self.stored, self.deleted, self.fail_at = [], [], fail_at

    def post(self, uri, body):
        assert uri == "/instances"
        if self.fail_at is not None and len(self.stored) + 1 == self.fail_at:
            raise OrthancError("/instances", code=19)
        self.stored.append(body)
        number = len(self.stored)
        return json.dumps({"ID": "i%d" % number, "Path": "/instances/i%d" % number, "ParentPatient": "p",
                           "ParentStudy": "st", "ParentSeries": "se", "Status": "Success"}).encode()

    def services(self):
        return Services(rest_get_json=None, rest_post=self.post, rest_delete=self.deleted.append,
                        default_encoding=lambda: "Latin1")


def _handler(fake):
    return CreateDicom(settings.Settings(), Dictionary(), fake.services())


def _request(body):
    return web.Request("POST", "/tools/create-dicom", body=json.dumps(body).encode())


def test_series_answer_is_the_series():
    fake = FakeOrthanc()
    answer = json.loads(_handler(fake)(_request({"Tags": {}, "Content": [png("L"), png("L")]})).body)
    assert answer == {"ID": "se", "Path": "/series/se", "Status": "Success"}
    assert len(fake.stored) == 2


def test_a_store_failing_halfway_removes_what_this_request_stored():
    fake = FakeOrthanc(fail_at=3)
    with pytest.raises(OrthancError) as caught:
        _handler(fake)(_request({"Tags": {}, "Content": [png("L")] * 4}))
    assert caught.value.code == 19
    assert fake.deleted == ["/instances/i1", "/instances/i2"]


def test_a_bad_item_leaves_nothing_stored():
    fake = FakeOrthanc()
    with pytest.raises(Exception):
        _handler(fake)(_request({"Tags": {}, "Content": [png("L"), "data:image/png;base64,AAAA"]}))
    # built and stored one at a time: the first was stored, then removed
    assert fake.deleted == ["/instances/i1"]


def test_a_series_is_built_one_file_at_a_time(monkeypatch):
    from advanced_rest.dicomize import builder
    fake, events = FakeOrthanc(), []
    build = builder.Plan.file
    monkeypatch.setattr(builder.Plan, "file", lambda plan, index: events.append("build") or build(plan, index))
    original = fake.post
    fake.post = lambda uri, body: events.append("store") or original(uri, body)
    _handler(fake)(_request({"Tags": {}, "Content": [png("L")] * 3}))
    assert events == ["build", "store"] * 3


def test_the_requester_is_the_basic_user_and_the_proxy_address():
    from advanced_rest.create_dicom.route import requester
    assert requester({"authorization": "Basic YWxpY2U6c2VjcmV0", "x-forwarded-for": "10.0.0.1"}) \
        == "user=alice; forwarded-for=10.0.0.1; via=advanced-rest"
    assert requester({"authorization": "Basic !!!"}) == "via=advanced-rest"
    assert requester({}) == "via=advanced-rest"


def test_a_job_waits_out_a_database_outage_but_nothing_else():
    from advanced_rest.create_dicom import storing
    calls, slept = [], []

    def flaky(data):
        calls.append(data)
        if len(calls) < 3:
            raise OrthancError("/instances", code=36)
        return "stored"
    assert storing.patient(flaky, sleep=slept.append)("x") == "stored" and slept == [0.5, 1.0]

    def broken(data):
        raise OrthancError("/instances", code=19)  # the disk is full: not transient
    with pytest.raises(OrthancError):
        storing.patient(broken, sleep=slept.append)("x")

    # The call whose own transaction the outage broke (Orthanc 1.10.1, PostgreSQL plugin 4.0): again,
    # a few times only (it is also a real error).
    answers = [6, 36, 36]
    def broken_then_away(data):
        if answers:
            raise OrthancError("/instances", code=answers.pop(0))
        return "stored"
    slept.clear()
    assert storing.patient(broken_then_away, sleep=slept.append)("x") == "stored" and slept == [0.5, 1.0, 2.0]
    always = []
    def always_bad_sequence(data):
        always.append(data)
        raise OrthancError("/instances", code=6)
    with pytest.raises(OrthancError):
        storing.patient(always_bad_sequence, sleep=lambda s: None)("x")
    assert len(always) == 1 + storing.BROKEN_TRANSACTION_TRIES

    now = [0.0]
    def forever(data):
        raise OrthancError("/instances", code=36)
    with pytest.raises(OrthancError):
        storing.patient(forever, wait=3.0, sleep=lambda s: now.__setitem__(0, now[0] + s),
                        clock=lambda: now[0])("x")


def test_new_identifiers_are_random_version_4_uuids():
    import uuid
    from advanced_rest.create_dicom.route import new_patient_id, new_uid
    uids = {new_uid() for _ in range(100)}
    assert len(uids) == 100
    for uid in uids:
        number = int(uid[len("2.25."):])
        assert uid.startswith("2.25.") and uuid.UUID(int=number).version == 4 and len(uid) <= 64
    patient = new_patient_id()
    assert str(uuid.UUID(patient)) == patient and uuid.UUID(patient).version == 4
