#!/usr/bin/env python3
"""Jobs: how soon GET /jobs/{id}/wait tells a client a job is done, and GET /jobs?expand over a full history.

Two cases, each on its own Orthanc server of one leg with our plugin, started with the test harness
(tests/integration/servers.py):

1. Wait latency. Plugin jobs (asynchronous create-dicom of a series of copies of a 2048x2048 gray
   PNG, sized to last ~0.3-1 s) are followed either with `GET /jobs/{id}/wait?timeout=60` or by
   polling `GET /jobs/{id}` every 100 ms (the Orthanc Book's advice), alternating job by job. The
   latency of one job is the client's wall clock when it learns the job is finished minus the
   job's CompletionTime (UTC, same machine). Target: polling's median at least 10 times wait's.
2. GET /jobs?expand with 1,000 finished core jobs in the history (`JobsHistorySize` 1000 and
   `AdvancedRest.ServeCoreRoutes` false, so `/jobs` is the core's own route and
   `/advanced-rest/jobs` the plugin's, which forwards to the core and adds its own jobs), timed
   alternately on both routes; then again with ~100 finished plugin jobs added. Target: plugin /
   core at most 1.5.

Targets are printed, never asserted.

    .venv/test/bin/python benchmarks/jobs.py [--leg bookworm|forky] [--json FILE]
"""
import base64
import concurrent.futures
import datetime
import io
import json
import statistics
import sys
import time

import requests
from PIL import Image

from bench import Failure, abba, machine, markdown_table, ok, open_leg, options, report, servers, verdict

WAIT_TARGET = 10.0  # polling median / wait median at least this
LIST_TARGET = 1.5  # plugin / core GET /jobs?expand median at most this
POLL_INTERVAL = 0.1  # seconds between two GET /jobs/{id} of a polling client
WAIT_TIMEOUT = 60  # ?timeout= of GET /jobs/{id}/wait
JOB_SECONDS = 0.6  # wanted duration of one wait-latency job (series size is calibrated to it)
MAX_COPIES = 64
WARMUP = 3  # untimed GET /jobs?expand per route before a case
THREADS = 4  # clients filling the history
FINISHED = ("Success", "Failure")
PLUGIN_ROOT = "/advanced-rest"
HISTORY_CONFIG = {"JobsHistorySize": 1000, "AdvancedRest": {"ServeCoreRoutes": False}}


def big_png():
    """A 2048x2048 gray gradient: a few KiB to send, 4 MiB to decode and store."""
    image = Image.linear_gradient("L").resize((2048, 2048))
    out = io.BytesIO()
    image.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def completion_epoch(text):
    """Orthanc's CompletionTime (UTC, 20240506T070809.123456 or without fraction) as time.time() seconds."""
    fmt = "%Y%m%dT%H%M%S.%f" if "." in text else "%Y%m%dT%H%M%S"
    return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()


# -- case 1: wait latency -------------------------------------------------------------------------

def submit(session, server, body, root=""):
    answer = session.post(server.url + root + "/tools/create-dicom", timeout=60,
                          data=json.dumps(dict(body, Asynchronous=True)))
    return ok(answer, "asynchronous create-dicom")["ID"]


def learn_by_wait(session, server, job_id):
    answer = session.get(f"{server.url}/jobs/{job_id}/wait", params={"timeout": WAIT_TIMEOUT},
                         timeout=WAIT_TIMEOUT + 10)
    job = ok(answer, f"wait {job_id}")
    learned = time.time()
    if job["State"] not in FINISHED:
        raise Failure(f"job {job_id} not finished after {WAIT_TIMEOUT} s of wait: {job['State']}")
    return job, learned


def learn_by_polling(session, server, job_id):
    """GET /jobs/{id} at submission + k * 100 ms until the job is finished."""
    start = time.monotonic()
    for k in range(1, 1 + int(WAIT_TIMEOUT / POLL_INTERVAL)):
        job = ok(session.get(f"{server.url}/jobs/{job_id}", timeout=60), f"GET /jobs/{job_id}")
        learned = time.time()
        if job["State"] in FINISHED:
            return job, learned
        time.sleep(max(0.0, start + k * POLL_INTERVAL - time.monotonic()))
    raise Failure(f"job {job_id} not finished after {WAIT_TIMEOUT} s of polling")


def run_job(session, server, body, learn):
    """Submit, learn the end with `learn`; return (latency s, job duration s). Cleans up after."""
    job_id = submit(session, server, body)
    job, learned = learn(session, server, job_id)
    if job["State"] != "Success":
        raise Failure(f"job {job_id} failed: {job.get('ErrorDescription')} {job.get('ErrorDetails')}")
    completed = completion_epoch(job["CompletionTime"])
    duration = completed - completion_epoch(job["CreationTime"])
    series = job["Content"]["ID"]
    session.delete(f"{server.url}/series/{series}", timeout=60)  # outside the measured part
    return learned - completed, duration


def series_body(png, copies):
    return {"Tags": {"PatientName": "Benchmark^Jobs", "StudyDescription": "jobs benchmark"},
            "Content": [png] * copies}


def wait_case(server, repeat):
    """Calibrate the series size, then alternate wait and polling job by job."""
    png = big_png()
    session = requests.Session()
    probe = 4
    run_job(session, server, series_body(png, probe), learn_by_wait)  # warm-up
    _, duration = run_job(session, server, series_body(png, probe), learn_by_wait)
    copies = max(1, min(MAX_COPIES, round(probe * JOB_SECONDS / max(duration, 1e-3))))
    body = series_body(png, copies)
    print(f"  {probe} copies took {duration:.2f} s: {copies} copies a job", file=sys.stderr)
    methods = {"wait": learn_by_wait, "poll": learn_by_polling}
    latency = {name: [] for name in methods}
    durations = []
    for _, name in abba(("wait", "poll"), repeat):
        seconds, duration = run_job(session, server, body, methods[name])
        latency[name].append(seconds)
        durations.append(duration)
    session.close()
    return {
        "n": repeat, "copies": copies, "poll_interval_s": POLL_INTERVAL,
        "wait_ms": 1000 * statistics.median(latency["wait"]),
        "poll_ms": 1000 * statistics.median(latency["poll"]),
        "job_median_s": statistics.median(durations),
        "wait_s": latency["wait"], "poll_s": latency["poll"], "job_s": durations,
    }


# -- case 2: GET /jobs?expand over a full history -----------------------------------------------------

def in_threads(count, task):
    """Run task(session) `count` times on THREADS threads (one Session each); return the results."""
    sessions = [requests.Session() for _ in range(THREADS)]

    def worker(k):
        return [task(sessions[k]) for _ in range(count // THREADS + (k < count % THREADS))]

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        results = [r for part in pool.map(worker, range(THREADS)) for r in part]
    for s in sessions:
        s.close()
    return results


def finished_jobs(server, path):
    jobs = ok(server.get(path, params={"expand": ""}), f"GET {path}?expand")
    return sum(job.get("State") in FINISHED for job in jobs), len(jobs)


def wait_finished(server, path, count, timeout):
    deadline = time.monotonic() + timeout
    while True:
        done, total = finished_jobs(server, path)
        if done >= count:
            return done
        if time.monotonic() > deadline:
            raise Failure(f"{path}: {done} of {total} jobs finished after {timeout:.0f} s (wanted {count})")
        time.sleep(0.2)


def archive_job(server, study):
    def task(session):
        answer = session.post(f"{server.url}/studies/{study}/archive", timeout=60,
                              data=json.dumps({"Asynchronous": True}))
        return ok(answer, "asynchronous archive")["ID"]
    return task


def fill_core_history(server, count):
    """`count` finished core jobs: asynchronous archives of one tiny study (the cheapest core job here)."""
    study = ok(server.post("/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "Jobs^History"}})),
               "create-dicom")["ParentStudy"]
    t0 = time.monotonic()
    in_threads(count, archive_job(server, study))
    wait_finished(server, "/jobs", count, timeout=120)
    return time.monotonic() - t0


def add_plugin_jobs(server, count):
    """`count` finished plugin jobs: asynchronous create-dicom of `{"Tags": {}}`."""
    def task(session):
        job_id = submit(session, server, {"Tags": {}}, root=PLUGIN_ROOT)
        answer = session.get(f"{server.url}{PLUGIN_ROOT}/jobs/{job_id}/wait", params={"timeout": WAIT_TIMEOUT},
                             timeout=WAIT_TIMEOUT + 10)
        return ok(answer, f"wait {job_id}")["State"]
    t0 = time.monotonic()
    states = in_threads(count, task)
    if any(state not in FINISHED for state in states):
        raise Failure(f"plugin jobs not finished: {sorted(set(states))}")
    return time.monotonic() - t0


def list_case(server, repeat):
    """Alternate GET /jobs?expand on the core's route and the plugin's (ABBA), after a warm-up."""
    paths = {"core": "/jobs", "plugin": PLUGIN_ROOT + "/jobs"}
    session = requests.Session()
    times = {role: [] for role in paths}
    sizes = {}
    for i, role in abba(paths, WARMUP + repeat):
        start = time.perf_counter()
        answer = session.get(server.url + paths[role], params={"expand": ""}, timeout=60)
        body = answer.content
        elapsed = time.perf_counter() - start
        if answer.status_code != 200:
            raise Failure(f"GET {paths[role]}?expand: HTTP {answer.status_code}: {answer.text[:500]}")
        if i >= WARMUP:
            times[role].append(elapsed)
        sizes[role] = (len(body), len(json.loads(body)))
    session.close()
    return {
        "n": repeat,
        "core_ms": 1000 * statistics.median(times["core"]),
        "plugin_ms": 1000 * statistics.median(times["plugin"]),
        "core_jobs": sizes["core"][1], "plugin_jobs": sizes["plugin"][1],
        "core_bytes": sizes["core"][0], "plugin_bytes": sizes["plugin"][0],
        "core_s": times["core"], "plugin_s": times["plugin"],
    }


# -- report ---------------------------------------------------------------------------------------

def table(results, m):
    lines = []
    w = results.get("wait")
    if w:
        ratio = w["poll_ms"] / w["wait_ms"]
        lines.append(f"| wait latency, job end -> client knows: polling every {1000 * w['poll_interval_s']:.0f} ms "
                     f"vs `GET /jobs/{{id}}/wait` (n={w['n']} each; CreateDicom jobs of {w['copies']} PNG "
                     f"2048x2048, median {w['job_median_s']:.2f} s) | {w['poll_ms']:.1f} | {w['wait_ms']:.1f} | "
                     f"{ratio:.1f} (polling / wait) | >= {WAIT_TARGET:.0f} {verdict(ratio >= WAIT_TARGET)} |")
    for key, label in (("list", "GET /jobs?expand, {core_jobs} core jobs: core `/jobs` vs plugin `/advanced-rest/jobs`"),
                       ("list_plus", "GET /jobs?expand, {core_jobs} core jobs + {extra} plugin jobs: core `/jobs` vs "
                                     "plugin `/advanced-rest/jobs`")):
        r = results.get(key)
        if not r:
            continue
        ratio = r["plugin_ms"] / r["core_ms"]
        text = label.format(core_jobs=r["core_jobs"], extra=r["plugin_jobs"] - r["core_jobs"])
        lines.append(f"| {text} (n={r['n']} each; {r['core_bytes'] / 1024:.0f} / {r['plugin_bytes'] / 1024:.0f} KiB) | "
                     f"{r['core_ms']:.1f} | {r['plugin_ms']:.1f} | {ratio:.3f} | <= {LIST_TARGET:.1f} "
                     f"{verdict(ratio <= LIST_TARGET)} |")
    return markdown_table("baseline median ms", "advanced-rest median ms", lines, m)


def add_options(parser):
    parser.add_argument("--jobs", type=int, default=20,
                        help="wait-latency jobs per method (wait, polling); default %(default)s")
    parser.add_argument("--history", type=int, default=1000,
                        help="finished core jobs in the history (JobsHistorySize); default %(default)s")
    parser.add_argument("--plugin-jobs", type=int, default=100,
                        help="finished plugin jobs added for the last case; default %(default)s")
    parser.add_argument("--repeat", type=int, default=50,
                        help="timed GET /jobs?expand per route and case; default %(default)s")


def main():
    args = options(__doc__, add_options)
    leg = open_leg(args.leg)
    began = time.monotonic()
    history_config = dict(HISTORY_CONFIG, JobsHistorySize=args.history)
    results = {"wait_target": WAIT_TARGET, "list_target": LIST_TARGET, "warmup": WARMUP,
               "history_config": history_config}

    print(f"starting two Orthanc servers ({leg.name}) with the plugin ...", file=sys.stderr)
    with servers(leg, ("wait", {"plugin": True}),
                 ("history", {"plugin": True, "config": history_config})) as (waiter, lister):
        m = machine(leg, waiter, waiter)
        results["machine"] = m

        t0 = time.monotonic()
        results["wait"] = wait_case(waiter, args.jobs)
        w = results["wait"]
        print(f"  wait latency: polling {w['poll_ms']:.1f} ms, wait {w['wait_ms']:.1f} ms "
              f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        waiter.terminate()  # stops while the second case runs

        seconds = fill_core_history(lister, args.history)
        print(f"  {args.history} core jobs finished in {seconds:.1f} s", file=sys.stderr)
        t0 = time.monotonic()
        results["list"] = list_case(lister, args.repeat)
        r = results["list"]
        print(f"  GET /jobs?expand: core {r['core_ms']:.1f} ms, plugin {r['plugin_ms']:.1f} ms "
              f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        seconds = add_plugin_jobs(lister, args.plugin_jobs)
        print(f"  {args.plugin_jobs} plugin jobs finished in {seconds:.1f} s", file=sys.stderr)
        t0 = time.monotonic()
        results["list_plus"] = list_case(lister, args.repeat)
        r = results["list_plus"]
        print(f"  GET /jobs?expand + plugin jobs: core {r['core_ms']:.1f} ms, plugin {r['plugin_ms']:.1f} ms "
              f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)

    report(results, began, table(results, m), args.json)


if __name__ == "__main__":
    main()
