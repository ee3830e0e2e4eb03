"""The create-dicom handler with Orthanc's services faked: storing is all or nothing."""
import json

import pytest

from advanced_rest import settings, web
from advanced_rest.create_dicom import job
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


# ---- create-dicom as a job: bounded, and its request not kept while it waits ---------------------------

def _jobs(fake, **bounds):
    """(handler, engine, store, properties): the handler submitting to an engine saved in fake properties."""
    from local_jobs import LocalJobs
    from advanced_rest.jobs.store import Store
    properties, holder = {}, {}
    engine = LocalJobs(concurrent_jobs=1, persist=lambda: holder["store"].save(), **bounds)
    store = holder["store"] = Store(engine, lambda key, default="": properties.get(key, default),
                                    properties.__setitem__)
    store.start()
    return CreateDicom(settings.Settings(), Dictionary(), fake.services(), engine), engine, store, properties


def test_a_paused_series_job_keeps_no_request_and_resumes_from_its_step_with_the_same_files():
    import time
    from advanced_rest.jobs.store import decode_payload
    fake, pausing = FakeOrthanc(), {}
    post = fake.post

    def post_then_pause(uri, body):  # a client pauses the job while its first instance is stored
        answer = post(uri, body)
        if len(fake.stored) == 1:
            pausing["engine"].act(pausing["engine"].ids()[0], "pause")
        return answer
    fake.post = post_then_pause
    handler, engine, store, properties = _jobs(fake)
    pausing["engine"] = engine
    engine.start()
    try:
        job_id = json.loads(handler(_request({"Tags": {}, "Content": [png("L"), png("RGB"), png("L")],
                                              "Asynchronous": True})).body)["ID"]
        deadline = time.monotonic() + 10
        while engine.get(job_id)["State"] != "Paused" and time.monotonic() < deadline:
            time.sleep(0.01)
        runner = engine._jobs[job_id].runner
        assert engine.get(job_id)["State"] == "Paused" and len(fake.stored) == 1
        assert (runner._plan, runner._payload) == (None, None), "a paused job holds neither its body nor its plan"
        assert runner.size() > 0 and runner.content()["InstancesStored"] == 1
        (saved,) = [text for key, text in properties.items() if key != 7400 and text]
        engine.act(job_id, "resume")
        job = engine.wait(job_id, 10)
    finally:
        engine.stop(5)
        store.stop()
    assert job["State"] == "Success" and job["Content"]["ID"] == "se"
    assert len(fake.stored) == 3, "it went on from its step: the first instance was not stored again"
    plan = handler.runner_from(decode_payload(saved))._plan
    assert fake.stored == [plan.file(index) for index in range(3)], "rebuilt from the saved request: the same files"


def test_an_asynchronous_body_over_max_pending_bytes_is_refused_before_anything_is_stored():
    from advanced_rest.errors import QueueFull, RequestTooLarge
    fake = FakeOrthanc()
    body = {"Tags": {}, "Content": [png("L")] * 2, "Asynchronous": True}
    size = len(_request(body).body)
    handler, engine, store, properties = _jobs(fake, max_pending_bytes=size + 10)
    try:
        with pytest.raises(RequestTooLarge) as caught:
            handler(_request(dict(body, Content=[png("L")] * 3)))
        assert caught.value.http_status == 413 and "AdvancedRest.MaxPendingBytes" in caught.value.details
        handler(_request(body))  # fits: accepted, and not run (the engine is not started)
        with pytest.raises(QueueFull) as caught:
            handler(_request(body))
        assert "AdvancedRest.MaxPendingBytes (%d)" % (size + 10) in caught.value.details
        assert len(engine.ids()) == 1 and fake.stored == []
        assert len([text for key, text in properties.items() if key != 7400 and text]) == 1
    finally:
        store.stop()


class _OneFile:
    count, is_series = 1, False


def test_a_jobs_content_names_who_asked_and_only_when_known():
    asked = {"Body": b"{}", "Requester": "user=alice; via=advanced-rest"}
    assert job.CreateDicomRunner(_OneFile(), None, None, payload=asked).content()["Creator"] == asked["Requester"]
    assert "Creator" not in job.CreateDicomRunner(_OneFile(), None, None, payload={"Body": b"{}"}).content()
