"""Reading the core's jobs (jobs/core.py) and the plugin's job ids (jobs/model.py), without Orthanc."""
import json
import re
import threading
import uuid

import pytest

from advanced_rest.errors import BadRequest, CoreJobsUnavailable
from advanced_rest.jobs import model
from advanced_rest.jobs.core import CoreJobs, loopback_permits
from advanced_rest.jobs.workers import Runner
from local_jobs import LocalJobs

CORE_A, CORE_B = str(uuid.uuid4()), str(uuid.uuid4())


def test_plugin_job_ids_are_version_8_uuids_that_core_ids_never_match():
    ids = {model.new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    for job_id in ids:
        assert uuid.UUID(job_id).version == 8 and uuid.UUID(job_id).variant == uuid.RFC_4122
        assert model.is_plugin_job_id(job_id) and re.fullmatch(model.PLUGIN_JOB_ID, job_id)
    assert not any(model.is_plugin_job_id(str(uuid.uuid4())) for _ in range(1000))
    assert not model.is_plugin_job_id(model.new_job_id() + "x")


def test_the_engine_gives_its_jobs_ids_of_the_plugin_form():
    class Nothing(Runner):
        def steps(self):
            return 1

    assert model.is_plugin_job_id(LocalJobs().submit("Test", Nothing()))


def test_a_seeded_create_dicom_job_makes_the_same_identifiers_from_a_plugin_job_id():
    from advanced_rest.create_dicom.job import seeded_identifiers
    seed = model.new_job_id()
    first, second = seeded_identifiers(seed), seeded_identifiers(seed)
    assert [first[0](), first[1](3), first[2]()] == [second[0](), second[1](3), second[2]()]


class Core:
    """The core's jobs as Orthanc's HTTP server answers them: status per id, or a failure."""

    def __init__(self, answers):
        self.answers = dict(answers)  # id -> list of statuses to answer in turn (the last one stays)
        self.reads = []
        self.failure = None

    def ids(self):
        return json.dumps(list(self.answers)).encode()

    def get(self, path):
        self.reads.append(path)
        if self.failure is not None:
            raise self.failure
        job_id = path.rsplit("/", 1)[1]
        statuses = self.answers.get(job_id, [404])
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if status == 200:
            return 200, json.dumps({"ID": job_id, "State": "Success"}).encode()
        return status, json.dumps({"HttpStatus": status, "OrthancStatus": 8}).encode()


def _jobs(core, **kw):
    kw.setdefault("delays", (0, 0, 0))
    return CoreJobs(core.ids, core.get, **kw)


def test_a_job_answered_400_is_read_again_shortly_and_then_answers_the_cores_400():
    core = Core({CORE_A: [400, 400, 200], CORE_B: [400]})
    jobs = _jobs(core)
    assert jobs.job(CORE_A)["ID"] == CORE_A
    with pytest.raises(BadRequest):
        jobs.job(CORE_B)
    assert len([p for p in core.reads if CORE_B in p]) == 4  # once, then after each of three delays


def test_the_list_leaves_out_a_job_that_keeps_answering_400_and_reads_it_once_afterwards():
    core = Core({CORE_A: [200], CORE_B: [400, 400, 400, 400, 400, 400, 200]})
    jobs = _jobs(core)
    assert [job["ID"] for job in jobs.all()] == [CORE_A]
    core.reads.clear()
    assert [job["ID"] for job in jobs.all()] == [CORE_A]
    assert core.reads == ["/jobs/" + CORE_B]  # A succeeded (final: kept), B stuck: not retried
    core.reads.clear()
    assert [job["ID"] for job in jobs.all()] == [CORE_A]  # its 6th 400
    assert [job["ID"] for job in jobs.all()] == [CORE_A, CORE_B]  # readable at last: listed again


def test_a_job_no_longer_listed_is_forgotten():
    core = Core({CORE_A: [200]})
    jobs = _jobs(core)
    assert len(jobs.all()) == 1
    del core.answers[CORE_A]
    assert jobs.all() == []


def test_the_plugins_own_ids_are_never_read_through_the_loopback():
    """It would reach the plugin's own /jobs/{id} route, which would read it again, and again."""
    plugin_id = model.new_job_id()
    core = Core({plugin_id: [200]})
    jobs = _jobs(core)
    assert jobs.job(plugin_id) is None and jobs.all() == [] and core.reads == []


@pytest.mark.parametrize("failure", [ConnectionError("refused"), 401, 403], ids=["refused", "401", "403"])
def test_an_unusable_loopback_warns_once_and_leaves_core_jobs_out(failure, caplog):
    core = Core({CORE_A: [failure if isinstance(failure, int) else 200]})
    if not isinstance(failure, int):
        core.failure = failure
    jobs = _jobs(core)
    with caplog.at_level("INFO", logger="advanced_rest"):
        assert jobs.all() == [] and jobs.job(CORE_A) is None and jobs.all() == []
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "left out" in warnings[0].getMessage()
    core.failure, core.answers[CORE_A] = None, [200]
    with caplog.at_level("INFO", logger="advanced_rest"):
        assert jobs.job(CORE_A)["ID"] == CORE_A  # it works again, and says so
    assert "again" in caplog.records[-1].getMessage()


def test_a_timeout_is_a_503_not_a_hang():
    core = Core({CORE_A: [200]})
    core.failure = TimeoutError()
    with pytest.raises(CoreJobsUnavailable):
        _jobs(core).job(CORE_A)


def test_requests_beyond_the_permits_wait_then_answer_503_while_the_plugins_threads_never_wait():
    release, entered = threading.Event(), threading.Event()
    core = Core({CORE_A: [200]})

    def slow(path):
        entered.set()
        release.wait(5)
        return core.get(path)

    jobs = CoreJobs(core.ids, slow, permits=1, delays=(), permit_wait=0.1)
    holder = threading.Thread(target=jobs.all)
    holder.start()
    assert entered.wait(5)
    with pytest.raises(CoreJobsUnavailable):
        jobs.all()
    release.set()
    assert jobs.all(in_request=False)  # the watcher's thread holds no HTTP thread: no permit
    holder.join(5)
    assert [job["ID"] for job in jobs.all()] == [CORE_A]


def test_permits_are_a_quarter_of_the_http_threads():
    assert (loopback_permits(50), loopback_permits(2), loopback_permits(1)) == (12, 1, 1)
