"""A soak workload: concurrent clients over the plugin's routes and the core's, then the checks after it.

Each client loops until the deadline over a weighted mix of operations (`WEIGHTS`); each request goes
to a server picked at random among those given (the replicas of a cluster; one server: always it):

- synchronous create-dicom of one small PNG or JPEG, or of a series of 2-10;
- asynchronous create-dicom (one or a series), followed to its end with `GET /jobs/{id}/wait`, or
  through `{Root}/jobs/changes` (`since`, `timeout`) and then `GET /jobs/{id}`;
- an asynchronous series of larger images, cancelled once it runs;
- job monitoring: `GET /jobs` with `state`, `type` and `expand`;
- metric scrapes: `/tools/metrics-prometheus` and `{Root}/metrics`, parsed;
- `POST /instances` of a small DICOM file made with pydicom.

`Recorder` keeps each request's latency by route, the errors (a 5xx, a connection error, or any
answer but the one expected: no request of the mix should get a 4xx) with the first few in full,
what the servers said exists, and the cancelled jobs. soak_checks.py samples each Orthanc's VmRSS
meanwhile and checks afterwards what exists.

Used by benchmarks/soak.py (10 minutes) and tests/integration/test_soak.py (1 minute in make test).
"""
import base64
import collections
import io
import json
import random
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np
import requests
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from servers import new_session
from soak_checks import RssMonitor, Verification, verify

ROOT = "/advanced-rest"
# JobsHistorySize: the finished plugin jobs kept (default 10) must outlive a client's follow-up (a job
# is read after its end comes in the change feed, and 8 clients finish several jobs a second); 100
# is still trimmed all along, where a leak would show. MaximumStorageCacheSize: Orthanc's cache of
# DICOM files (1.10+, 128 MB by default) fills over a soak's first minute or two; off, VmRSS shows
# what the plugin and the rest of Orthanc keep.
SERVER_CONFIG = {"JobsHistorySize": 100, "MaximumStorageCacheSize": 0}
WEIGHTS = {"sync_single": 20, "sync_series": 6, "async_wait": 10, "async_changes": 6, "cancel": 4,
           "monitor": 10, "metrics": 6, "store": 16}
SERIES_ITEMS = (2, 10)
CANCEL_ITEMS = 10  # a cancelled series: PNG 512x512, a step long enough to cancel between two
FINISHED = ("Success", "Failure")
CANCELED_JOB = 37  # Orthanc's ErrorCode_CanceledJob
REQUEST_TIMEOUT = 120
JOB_DEADLINE = 120  # seconds a client follows one job before recording it as never finished
LONG_POLL = 5  # timeout= of wait and changes
ERRORS_KEPT = 10
RELEARN = 0.2  # share of change-feed follows that start by asking for the newest number
# The error status of a change feed that answers `since` beyond its newest number with that `since`
# instead of the newest number (the README's behaviour, the single server's).
FEED_POSITION = "Last beyond the newest change"
EXCERPT = 300


# -- payloads ---------------------------------------------------------------------------------------

def _data_uri(image, fmt):
    out = io.BytesIO()
    image.save(out, fmt)
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return "data:%s;base64,%s" % (mime, base64.b64encode(out.getvalue()).decode("ascii"))


def _gradient(mode, size):
    ramp = np.add.outer(np.arange(size), np.arange(size)) * (255.0 / (2 * size - 2))
    if mode == "L":
        return Image.fromarray(ramp.astype(np.uint8), "L")
    planes = [ramp, ramp[::-1], ramp[:, ::-1]]
    return Image.fromarray(np.stack(planes, axis=-1).astype(np.uint8), "RGB")


def small_images():
    """Data URIs of small images: PNG and JPEG, gray and RGB, 32 to 128 pixels a side."""
    return [_data_uri(_gradient(mode, size), fmt)
            for fmt in ("PNG", "JPEG") for mode in ("L", "RGB") for size in (32, 64, 128)]


def dicom_file(patient_id, accession):
    """A 16x16 8-bit gray Secondary Capture file (bytes) with fresh UIDs."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.AccessionNumber = patient_id, "Soak^Store", accession
    ds.Modality, ds.SamplesPerPixel, ds.PhotometricInterpretation = "OT", 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(range(256))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


# -- what the clients saw ---------------------------------------------------------------------------

class Recorder:
    """Latencies by route, errors, and what the servers said exists; safe to share between threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.latencies = collections.defaultdict(list)  # route -> seconds
        self.errors = 0
        self.first_errors = []  # (route, status or "connection", excerpt)
        self.error_kinds = collections.Counter()  # (route, status) -> errors
        self.instances = []  # (instance id, what created it)
        self.series = []  # (series id, instances expected, what created it)
        self.cancelled = []  # (job id, AccessionNumber) of jobs that ended cancelled
        self.cancels = collections.Counter()  # what an accepted cancel ended in
        self.ops = collections.Counter()
        self.sent = collections.Counter()  # server name -> create-dicom body bytes sent to it

    def latency(self, route, seconds):
        with self._lock:
            self.latencies[route].append(seconds)

    def error(self, route, status, excerpt):
        with self._lock:
            self.errors += 1
            self.error_kinds[(route, status)] += 1
            if len(self.first_errors) < ERRORS_KEPT:
                self.first_errors.append((route, status, excerpt[:EXCERPT]))

    def add(self, attribute, item):
        with self._lock:
            getattr(self, attribute).append(item)

    def count(self, counter, key, amount=1):
        with self._lock:
            getattr(self, counter)[key] += amount

    def requests(self):
        return sum(len(v) for v in self.latencies.values())


def quantile_ms(seconds, q):
    ordered = sorted(seconds)
    if len(ordered) == 1:
        return 1000 * ordered[0]
    return 1000 * statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]


class Client:
    """One client: its own Session per server, its own random sequence, until `deadline`."""

    def __init__(self, number, servers, recorder, images, cancel_image, deadline, seed):
        self.number, self.servers, self.rec, self.deadline = number, servers, recorder, deadline
        self.images, self.cancel_image = images, cancel_image
        self.rng = random.Random(seed * 1000 + number)
        self.sessions = {}
        for server in servers:
            self.sessions[server.name] = new_session(server.session.auth)  # the docker leg's credentials
        self.n = 0
        self.cursor = None  # change feed number where this client's last follow ended

    def run(self):
        names, weights = zip(*WEIGHTS.items())
        try:
            while time.monotonic() < self.deadline:
                op = self.rng.choices(names, weights)[0]
                self.rec.count("ops", op)
                try:
                    getattr(self, op)()
                except Exception as error:  # an answer of the wrong shape: counted, the client goes on
                    self.rec.error(op, "unexpected answer", f"{type(error).__name__}: {error}")
        finally:
            for session in self.sessions.values():
                session.close()

    # -- HTTP --------------------------------------------------------------------------------------

    def call(self, method, route, path, server=None, **kw):
        """The answer when it is 200, else None after recording an error."""
        server = server or self.rng.choice(self.servers)
        started = time.perf_counter()
        kw.setdefault("timeout", REQUEST_TIMEOUT)
        try:
            answer = self.sessions[server.name].request(method, server.url + path, **kw)
        except requests.RequestException as error:
            self.rec.error(route, "connection", f"{server.name} {method} {path}: {error}")
            return None
        self.rec.latency(route, time.perf_counter() - started)
        if answer.status_code != 200:
            self.rec.error(route, answer.status_code, f"{server.name} {method} {path}: {answer.text}")
            return None
        return answer

    def create(self, route, body):
        data = json.dumps(body)
        server = self.rng.choice(self.servers)
        self.rec.count("sent", server.name, len(data))
        answer = self.call("POST", route, "/tools/create-dicom", server, data=data)
        return answer.json() if answer is not None else None

    def body(self, content, **extra):
        """A create-dicom body whose AccessionNumber names this request (found again if left over)."""
        self.n += 1
        accession = f"S{self.number}-{self.n}"
        tags = {"PatientID": f"SOAK-{self.number}", "PatientName": f"Soak^Client{self.number}",
                "AccessionNumber": accession, "StudyDescription": "soak"}
        return dict({"Tags": tags, "Content": content}, **extra), accession

    def series_content(self):
        return [self.rng.choice(self.images) for _ in range(self.rng.randint(*SERIES_ITEMS))]

    # -- operations --------------------------------------------------------------------------------

    def sync_single(self):
        body, accession = self.body(self.rng.choice(self.images))
        answer = self.create("POST /tools/create-dicom (sync, 1)", body)
        if answer is not None:
            self.rec.add("instances", (answer["ID"], f"sync create-dicom {accession}"))

    def sync_series(self):
        content = self.series_content()
        body, accession = self.body(content)
        answer = self.create("POST /tools/create-dicom (sync, series)", body)
        if answer is not None:
            self.rec.add("series", (answer["ID"], len(content), f"sync series {accession}"))

    def async_wait(self):
        self.run_job(self.by_wait)

    def async_changes(self):
        self.run_job(self.by_changes)

    def run_job(self, follow):
        series = self.rng.random() < 0.5
        content = self.series_content() if series else self.rng.choice(self.images)
        body, accession = self.body(content, Asynchronous=True)
        cursor = self.feed_cursor() if follow == self.by_changes else None
        submitted = self.create("POST /tools/create-dicom (async)", body)
        if submitted is None or cursor is False:
            return
        job = follow(submitted["ID"], cursor)
        if job is not None:
            self.record_success(job, len(content) if series else None, f"job {job['ID']} {accession}")

    def record_success(self, job, items, what):
        if job["State"] != "Success":
            self.rec.error("job", job["State"], f"{what}: {job.get('ErrorDescription')} {job.get('ErrorDetails')}")
        elif items is None:
            self.rec.add("instances", (job["Content"]["ID"], what))
        else:
            self.rec.add("series", (job["Content"]["ID"], items, what))

    def by_wait(self, job_id, _cursor=None):
        """The finished job, through GET /jobs/{id}/wait (asked again while it is not finished)."""
        give_up = time.monotonic() + JOB_DEADLINE
        while time.monotonic() < give_up:
            answer = self.call("GET", "GET /jobs/{id}/wait", f"/jobs/{job_id}/wait", params={"timeout": LONG_POLL},
                               timeout=LONG_POLL + REQUEST_TIMEOUT)
            if answer is None:
                return None
            job = answer.json()
            if job["State"] in FINISHED:
                return job
            time.sleep(0.05)  # answered at once when every long-poll slot is taken
        self.rec.error("job", "never finished", f"job {job_id} not finished after {JOB_DEADLINE} s of waits: "
                       f"{self.job_state(job_id)}")
        return None

    def job_state(self, job_id):
        """What a job shows now, for an error message: State, Progress, Replica, Content."""
        answer = self.call("GET", "GET /jobs/{id}", f"/jobs/{job_id}")
        job = answer.json() if answer is not None else {}
        return json.dumps({k: job.get(k) for k in ("State", "Progress", "Replica", "Content", "ErrorDescription")})

    def feed_cursor(self):
        """Where to follow the change feed from: now and then the newest number, as a client (re)starting
        learns it (a `since` beyond the newest answers it), else where this client's last follow ended.

        False after an error. A feed answering the `since` back instead (FEED_POSITION) is an error; the
        client then reads from its last cursor, or from the start.
        """
        if self.cursor is not None and self.rng.random() >= RELEARN:
            return self.cursor
        beyond = 2 ** 62
        answer = self.call("GET", "GET {Root}/jobs/changes", ROOT + "/jobs/changes", params={"since": beyond})
        if answer is None:
            return False
        last = answer.json()["Last"]
        if last < beyond:
            return last
        self.rec.error("GET {Root}/jobs/changes", FEED_POSITION, f"since={beyond} answered {answer.text}")
        return self.cursor or 0

    def by_changes(self, job_id, cursor):
        """The finished job: its end found in {Root}/jobs/changes after `cursor`, then GET /jobs/{id}."""
        give_up = time.monotonic() + JOB_DEADLINE
        while time.monotonic() < give_up:
            answer = self.call("GET", "GET {Root}/jobs/changes", ROOT + "/jobs/changes",
                               params={"since": cursor, "timeout": LONG_POLL})
            if answer is None:
                return None
            feed = answer.json()
            if any(c["ID"] == job_id and c["State"] in FINISHED for c in feed["Changes"]):
                answer = self.call("GET", "GET /jobs/{id}", f"/jobs/{job_id}")
                return answer.json() if answer is not None else None
            if not feed["Changes"]:
                time.sleep(0.05)
            cursor = self.cursor = feed["Last"]
        self.rec.error("GET {Root}/jobs/changes", "lost change",
                       f"the end of job {job_id} never came in the change feed within {JOB_DEADLINE} s; "
                       f"the job now: {self.job_state(job_id)}")
        return None

    def cancel(self):
        """An asynchronous series cancelled once it runs; its end classified (cancelled, too late)."""
        body, accession = self.body([self.cancel_image] * CANCEL_ITEMS, Asynchronous=True)
        submitted = self.create("POST /tools/create-dicom (async)", body)
        if submitted is None:
            return
        job_id = submitted["ID"]
        give_up = time.monotonic() + JOB_DEADLINE
        while True:
            answer = self.call("GET", "GET /jobs/{id}", f"/jobs/{job_id}")
            if answer is None:
                return
            state = answer.json()["State"]
            if state == "Running" or state in FINISHED or time.monotonic() > give_up:
                break
            time.sleep(0.01)
        if state == "Running" and self.call("POST", "POST /jobs/{id}/cancel", f"/jobs/{job_id}/cancel",
                                            data="{}") is None:
            return
        job = self.by_wait(job_id)
        if job is None:
            return
        if job["State"] == "Failure" and job["ErrorCode"] == CANCELED_JOB and state == "Running":
            self.rec.count("cancels", "cancelled while running")
            self.rec.add("cancelled", (job_id, accession))
        else:
            self.rec.count("cancels", "finished before the cancel" if state == "Running" else "not seen running")
            self.record_success(job, CANCEL_ITEMS, f"job {job_id} {accession} (to cancel)")

    def monitor(self):
        if self.rng.random() < 0.5:
            route, params = "GET /jobs?state=Running,Pending&type=CreateDicom&expand", \
                {"state": "Running,Pending", "type": "CreateDicom", "expand": ""}
            states, types = ("Running", "Pending"), ("CreateDicom",)
        else:
            route, params, states, types = "GET /jobs?state=Success,Failure&expand", \
                {"state": "Success,Failure", "expand": ""}, FINISHED, None
        answer = self.call("GET", route, "/jobs", params=params)
        if answer is None:
            return
        wrong = [job for job in answer.json() if job["State"] not in states or (types and job["Type"] not in types)]
        if wrong:
            self.rec.error(route, "filter", f"{len(wrong)} job(s) outside the filter, e.g. {json.dumps(wrong[0])}")

    def metrics(self):
        for route, path in (("GET /tools/metrics-prometheus", "/tools/metrics-prometheus"),
                            ("GET {Root}/metrics", ROOT + "/metrics")):
            answer = self.call("GET", route, path)
            if answer is not None:
                try:
                    list(text_string_to_metric_families(answer.text))
                except Exception as error:  # the parser raises ValueError and others
                    self.rec.error(route, "unparsable", f"{error}: {answer.text}")

    def store(self):
        self.n += 1
        accession = f"S{self.number}-{self.n}"
        answer = self.call("POST", "POST /instances", "/instances", data=dicom_file(f"SOAK-{self.number}", accession),
                           headers={"Content-Type": "application/dicom"})
        if answer is None:
            return
        stored = answer.json()
        if stored.get("Status") != "Success":
            self.rec.error("POST /instances", stored.get("Status"), f"{accession}: {answer.text}")
        self.rec.add("instances", (stored["ID"], f"POST /instances {accession}"))


# -- the run ----------------------------------------------------------------------------------------

@dataclass
class Result:
    seconds: float
    clients: int
    recorder: Recorder
    rss: RssMonitor
    verification: Verification
    verify_seconds: float


def run(servers, minutes, clients=8, seed=1, progress=None):
    """Soak `servers` with `clients` for `minutes`, then verify; a Result.

    `progress(text)`, when given, is called about once a minute with requests, errors and RSS so far.
    """
    images = small_images()
    cancel_image = _data_uri(_gradient("RGB", 512), "PNG")
    rec = Recorder()
    monitor = RssMonitor(servers, rec)
    monitor.start()
    began = time.monotonic()
    deadline = began + 60 * minutes
    workers = [threading.Thread(target=Client(k, servers, rec, images, cancel_image, deadline, seed).run,
                                daemon=True) for k in range(clients)]
    for w in workers:
        w.start()
    next_report = began + 60
    for w in workers:
        while w.is_alive():
            w.join(timeout=1.0)
            if progress and time.monotonic() >= next_report:
                next_report += 60
                rss = ", ".join(f"{name} {mb:.1f}" for name, mb in monitor.samples[-1][1].items())
                progress(f"{(time.monotonic() - began) / 60:.1f} min: {rec.requests()} requests, "
                         f"{rec.errors} errors, RSS MB {rss}")
    seconds = time.monotonic() - began
    monitor.stop()
    checked = time.monotonic()
    verification = verify(servers, rec)
    return Result(seconds, clients, rec, monitor, verification, time.monotonic() - checked)
