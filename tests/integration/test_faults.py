"""Faults on real Orthanc servers: a full disk, PostgreSQL going away under a replica, a plugin that
cannot start (issue 11). Each test compares with what the core of the same leg does where it can."""
import base64
import concurrent.futures
import contextlib
import io
import json
import os
import re
import subprocess
import tempfile
import time

import pytest
import requests
from PIL import Image

from cluster import Cluster, unavailable_reason as cluster_unavailable_reason
from servers import DockerLeg
from test_jobs import BIG_PNG, _instances, _submit, _until

ERROR_FIELDS = {"HttpError", "HttpStatus", "Message", "Method", "OrthancError", "OrthancStatus", "Uri"}
SMALL_FS_BYTES = 3 * 1024 * 1024  # eleven of NOISE_PNG's files


def _noise_png(side=300):
    """An RGB PNG of random pixels: ~270 KB stored, more than a write buffer, so that the core sees
    the write fail instead of losing it at close (Orthanc 1.10.1 stores an empty file for a small
    instance on a full disk, and answers Success)."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


NOISE_PNG = _noise_png()


# -- full disk ------------------------------------------------------------------------------------

@pytest.fixture
def small_filesystem(leg):
    """small_filesystem() -> a host folder under the leg's work dir (inside the forky chroot) on a
    tmpfs of SMALL_FS_BYTES, unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = []

    def make():
        folder = tempfile.mkdtemp(prefix="small-fs-", dir=leg.work_dir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0777" % SMALL_FS_BYTES, "tmpfs", folder],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        # Lazy: the servers are stopped by orthanc_factory's teardown, which may come later.
        subprocess.run(["umount", "-l", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _create(server, body):
    return server.post("/tools/create-dicom", data=json.dumps(body))


def _fill(server):
    """create-dicom of NOISE_PNG until refused; the refusal."""
    for _ in range(2 * SMALL_FS_BYTES // 250_000):
        answer = _create(server, {"Tags": {"PatientName": "Full^Disk"}, "Content": NOISE_PNG})
        if answer.status_code != 200:
            return answer
    raise AssertionError("the small filesystem never filled up")


def _storage_check(server, folder):
    """(instances whose file is missing or short, files of no instance as {path: size})."""
    known, broken = set(), []
    for instance in server.get("/instances").json():
        for name in server.get("/instances/%s/attachments" % instance).json():
            info = server.get("/instances/%s/attachments/%s/info" % (instance, name)).json()
            known.add(info["Uuid"])
        answer = server.get("/instances/%s/file" % instance)
        size = int(server.get("/instances/%s/attachments/dicom/size" % instance).text)
        if answer.status_code != 200 or len(answer.content) != size:
            broken.append(instance)
    orphans = {}
    for where, _, files in os.walk(folder):
        orphans.update({os.path.join(where, f): os.path.getsize(os.path.join(where, f))
                        for f in files if f not in known})
    return broken, orphans


def test_a_full_disk_refuses_cleanly_and_everything_works_once_space_is_freed(orthanc_factory, small_filesystem):
    # The index stays on the normal disk (Server's own folder): only the files run out.
    core_folder, folder = small_filesystem(), small_filesystem()
    core = orthanc_factory(plugin=False, storage_dir=core_folder)
    server = orthanc_factory(storage_dir=folder, config={"ConcurrentJobs": 1, "JobsHistorySize": 50})

    core_refusal, refusal = _fill(core), _fill(server)
    assert refusal.status_code < 500 or core_refusal.status_code >= 500, (refusal.text, core_refusal.text)
    body = refusal.json()
    assert ERROR_FIELDS <= set(body) and body["HttpStatus"] == refusal.status_code
    assert (body["OrthancStatus"], body["Message"]) == (core_refusal.json()["OrthancStatus"],
                                                        core_refusal.json()["Message"])

    # Both cores (1.10.1 and 1.13.0) leave the partial file of a refused write in the storage
    # folder, with no instance: the plugin must add nothing to that (one partial file per refusal).
    for who, folder_of, refusals in ((core, core_folder, 1), (server, folder, 1)):
        broken, orphans = _storage_check(who, folder_of)
        assert broken == [], who.name
        assert len(orphans) <= refusals and all(size < 270_000 for size in orphans.values()), (who.name, orphans)

    # A series that runs out of space half-way: Failure, readable, nothing of it left.
    stored = sorted(_instances(server))
    for instance in stored[:3]:
        assert server.delete("/instances/%s" % instance).status_code == 200
    before = _instances(server)
    job_id = _submit(server, {"Tags": {"PatientName": "Full^Series"}, "Content": [NOISE_PNG] * 6})
    job = _until(server, job_id, lambda j: j["State"] in ("Success", "Failure"), timeout=60)
    assert job["State"] == "Failure", job
    assert job["ErrorCode"] == body["OrthancStatus"] and job["ErrorDescription"] == body["Message"], job
    assert isinstance(job["ErrorDetails"], str) and job["ErrorDetails"].strip(), job
    assert _instances(server) == before
    broken, orphans = _storage_check(server, folder)
    assert broken == [] and len(orphans) <= 2, orphans

    # Space freed: both work again, the failed job as well (resubmitted).
    for instance in before:
        assert server.delete("/instances/%s" % instance).status_code == 200
    created = _create(server, {"Tags": {"PatientName": "Space^Again"}, "Content": NOISE_PNG})
    assert created.status_code == 200, created.text
    assert server.post("/jobs/%s/resubmit" % job_id).status_code == 200
    job = _until(server, job_id, lambda j: j["State"] in ("Success", "Failure"), timeout=60)
    assert job["State"] == "Success", job
    assert len(server.get("/series/%s/instances" % job["Content"]["ID"]).json()) == 6
    broken, orphans = _storage_check(server, folder)
    assert broken == [] and len(orphans) <= 2, orphans


# -- PostgreSQL going away under the cluster ------------------------------------------------------
#
# What the core does while its index is away (checked on both legs, for the report):
#   bookworm (Orthanc 1.10.1, PostgreSQL plugin 4.0): the index reconnects in a loop ("Database is
#     currently unavailable, retrying..." every 5 s) and every core route that reads it, /system
#     included, waits for the whole outage; POST /instances of a running job may answer 503 (36).
#   forky (Orthanc 1.13.0, PostgreSQL plugin 5.0): /system answers; /instances answers 503 or waits.
# Both cores recover by themselves once PostgreSQL is back (no restart).

OUTAGE_SECONDS = 10
ANSWER_WITHIN = 5  # seconds: a plugin route answers this fast while PostgreSQL is away, never hangs
CLUSTER = pytest.mark.cluster(config={"ConcurrentJobs": 1, "JobsHistorySize": 50})


def _postgres_of(cluster, request):
    if isinstance(cluster.leg, DockerLeg):
        pytest.skip("the docker leg's PostgreSQL runs in a container that the harness cannot stop and start yet")
    return request.getfixturevalue("postgres")


def _python_plugin_holds_the_gil(leg):
    """Python plugins before 4.3 keep the GIL during calls into Orthanc."""
    version = tuple(int(part) for part in re.findall(r"\d+", leg.versions.get("python_plugin", "0"))[:2])
    return version < (4, 3)


@contextlib.contextmanager
def _postgres_away(postgres, seconds=OUTAGE_SECONDS):
    """PostgreSQL stopped as an administrator would (pg_ctl stop -m fast), started again on the same
    port `seconds` after, whatever the body did."""
    postgres.stop(mode="fast")
    began = time.monotonic()
    try:
        yield
        time.sleep(max(0.0, seconds - (time.monotonic() - began)))
    finally:
        postgres.start()


def _answered(server, path, timeout=120):
    """GET path until it answers 200 (a replica reconnecting may answer 503 or time out meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = server.get(path, timeout=40)
            if answer.status_code == 200:
                return answer
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{server.name} {path} never answered 200 after the outage"
        time.sleep(0.5)


def _finished(server, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        job = _answered(server, "/jobs/%s/wait?timeout=20" % job_id).json()
        if job["State"] in ("Success", "Failure") or time.monotonic() > deadline:
            return job


def _probe(server, method, path, body=None):
    """(status or the exception's name, body, seconds) of one request, given up after 3 x ANSWER_WITHIN."""
    began = time.monotonic()
    try:
        answer = server.request(method, path, data=body, timeout=3 * ANSWER_WITHIN)
        return answer.status_code, answer.text, time.monotonic() - began
    except requests.RequestException as error:
        return type(error).__name__, "", time.monotonic() - began


@CLUSTER
def test_while_postgresql_is_away_plugin_routes_answer_503_at_once(cluster, request):
    postgres = _postgres_of(cluster, request)
    if _python_plugin_holds_the_gil(cluster.leg):
        pytest.skip("Python plugin < 4.3 keeps the GIL during calls into Orthanc: a plugin thread in a core call "
                    "that waits for the index (the core's retry loop) blocks every Python route for the outage")
    a, b = cluster
    job_id = _submit(a, {"Tags": {"PatientName": "Outage^Series"}, "Content": [BIG_PNG] * 30})
    _until(a, job_id, lambda j: j["State"] == "Running" and j["Progress"] > 0)
    submit = json.dumps({"Tags": {"PatientName": "Outage^New"}, "Asynchronous": True})
    probes = [(server, method, path, body) for server in (a, b) for method, path, body in (
        ("GET", "/jobs/%s" % job_id, None), ("GET", "/jobs", None),
        ("GET", "/advanced-rest/jobs/changes?since=0&timeout=0", None),
        ("POST", "/tools/create-dicom", submit))]
    with _postgres_away(postgres):
        time.sleep(1)  # the pools have seen their connections break
        with concurrent.futures.ThreadPoolExecutor(len(probes)) as pool:
            answers = list(pool.map(lambda probe: _probe(*probe), probes))
    problems = []
    for (server, method, path, _), (status, text, seconds) in zip(probes, answers):
        body = json.loads(text) if status == 503 else {}
        if status != 503 or body.get("OrthancStatus") != 36 or not ERROR_FIELDS <= set(body) \
                or seconds > ANSWER_WITHIN:
            problems.append(f"{server.identifier} {method} {path}: {status} after {seconds:.1f} s {text[:200]}")
    assert not problems, "\n".join(problems)


@CLUSTER
def test_a_job_running_through_a_postgresql_outage_ends_success_once_and_the_replicas_recover(cluster, request):
    postgres = _postgres_of(cluster, request)
    # Seen on both legs: the core's POST /instances of the running job answers 503 (36) when it is the
    # first index transaction after the connection broke (later ones wait for the reconnection): the
    # job's steps (and undo) wait such an outage out (create_dicom/storing.py patient).
    a, b = cluster
    before = _instances(a)
    job_id = _submit(a, {"Tags": {"PatientName": "Outage^Series"}, "Content": [BIG_PNG] * 30})
    _until(a, job_id, lambda j: j["State"] == "Running" and j["Progress"] > 0)
    with _postgres_away(postgres):
        pass

    job = _finished(a, job_id)
    assert job["State"] == "Success", json.dumps(job)
    assert len(_answered(a, "/series/%s/instances" % job["Content"]["ID"]).json()) == 30
    assert len(_instances(a) - before) == 30, "a job run twice stored more"
    listed = _answered(b, "/jobs?expand&type=CreateDicom").json()
    assert [j["ID"] for j in listed] == [job_id]
    for server in (a, b):  # no restart: both serve new jobs
        new_id = _submit(server, {"Tags": {"PatientName": "After^Outage"}})
        assert _finished(server, new_id)["State"] == "Success"


# -- a plugin that cannot start -------------------------------------------------------------------

def _plugin_lines(server, start=0):
    """Lines of the log that come from the plugin: its logger's prefix, the entrypoint's message, a
    Python traceback of its code."""
    lines = server.log_text(start).splitlines()
    return [line for line in lines if "advanced-rest: " in line or "advanced_rest" in line
            or line.startswith("Traceback") or re.match(r"\s+File \"", line)]


def _assert_not_serving(server, cause):
    """Exactly one ERROR line from the plugin naming `cause`; Orthanc's API works, the plugin's routes are gone."""
    lines = _plugin_lines(server)
    assert len(lines) == 1, "\n".join(lines)
    assert lines[0].startswith("E") and cause in lines[0], lines[0]
    assert server.get("/system").status_code == 200
    assert server.get("/instances").status_code == 200
    for path in ("/advanced-rest/system", "/advanced-rest/metrics", "/advanced-rest/openapi.json"):
        assert server.get(path).status_code == 404, path


def _host_path(leg, leg_path):
    root = getattr(leg, "root", None)  # the forky chroot
    return os.path.join(root, leg_path.lstrip("/")) if root else leg_path


def test_a_missing_dependency_is_one_error_line_and_orthanc_keeps_serving(leg, orthanc_factory):
    if isinstance(leg, DockerLeg):
        pytest.skip("the docker leg's containers take the image's environment: no PYTHONPATH of the test's")
    # The plugin's venv without pydicom: every other package linked into a folder on PYTHONPATH.
    site = tempfile.mkdtemp(prefix="site-without-pydicom-", dir=leg.work_dir)
    for name in os.listdir(_host_path(leg, leg.site_packages)):
        if not name.lower().startswith("pydicom"):
            os.symlink(os.path.join(leg.site_packages, name), os.path.join(site, name))
    server = orthanc_factory(env={"PYTHONPATH": leg.leg_path(site)})
    _assert_not_serving(server, "pydicom")


def test_a_bad_setting_is_one_error_line_naming_it_and_orthanc_keeps_serving(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"MaxPendingJobs": "many"}})
    _assert_not_serving(server, "AdvancedRest.MaxPendingJobs")


def test_a_cluster_database_the_plugin_cannot_use_is_one_error_line(leg, request):
    # Realistic: a DBA's database where Orthanc's user may create tables in schema public (what the
    # PostgreSQL index needs) but not schemas in the database (what the plugin's advanced_rest needs).
    reason = cluster_unavailable_reason(leg)
    if reason:
        pytest.skip(f"leg {leg.name}: {reason}")
    if isinstance(leg, DockerLeg):
        pytest.skip("the docker leg's cluster runs its own PostgreSQL container: covered on bookworm and forky")
    postgres = request.getfixturevalue("postgres")
    database = postgres.create_database("restricted")
    request.addfinalizer(lambda: postgres.drop_database(database))
    postgres.psql(f"ALTER DATABASE {database.name} OWNER TO postgres")
    postgres.psql(f"REVOKE CREATE ON DATABASE {database.name} FROM PUBLIC, {database.user}")
    database.psql(f"GRANT USAGE, CREATE ON SCHEMA public TO {database.user}")
    cluster = Cluster(leg, database)
    request.addfinalizer(cluster.close)
    server = cluster.add_replica()
    _assert_not_serving(server, "InsufficientPrivilege")


def test_a_postgresql_section_without_its_plugin_is_served_as_one_server(leg, orthanc_factory):
    """Orthanc's own integration configuration style: a PostgreSQL section enabling the index, no
    PostgreSQL plugin loaded (Orthanc's index is SQLite). Every feature is served, nothing is refused."""
    if isinstance(leg, DockerLeg):
        pytest.skip("the docker leg reads the image's configuration: covered on the Debian legs")
    server = orthanc_factory(config={"PostgreSQL": {"EnableIndex": True, "EnableStorage": False,
                                                     "Host": "127.0.0.1", "Port": 1, "Lock": False}})
    assert server.get("/system").json().get("DatabaseBackendPlugin") is None
    lines = _plugin_lines(server)
    assert not [line for line in lines if line.startswith("E")], "\n".join(lines)
    assert server.get("/advanced-rest/system").status_code == 200
    answer = server.post("/advanced-rest/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "Sql^Ite"},
                                                                              "Asynchronous": True}))
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["ID"]
    job = server.get("/jobs/%s/wait?timeout=30" % job_id).json()
    assert job["State"] == "Success"
    assert job_id in server.get("/jobs").json()
    assert "orthanc_jobs" in server.get("/advanced-rest/metrics").text
