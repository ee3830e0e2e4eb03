#!/usr/bin/env python3
"""Scrape latency: the plugin's metrics route against the core's /tools/metrics-prometheus, in one run.

Starts two Orthanc servers of one leg with our plugin and the test harness
(tests/integration/servers.py):

- server A with `AdvancedRest.ServeCoreRoutes` false, so that `/tools/metrics-prometheus` is the
  core's own route; `/advanced-rest/metrics` (the plugin's families) is timed against it, alternating
  request by request (ABBA) after a warm-up. Target: plugin / core median at most 2.
- server B with ServeCoreRoutes on: its `/tools/metrics-prometheus` (the core's lines followed by the
  plugin's families) is timed against A's core route, alternating. Informative.
- database size: after 2,000 more instances are stored on A, both routes of A are timed again; the
  plugin's medians with ~0 and ~2,000 instances should be the same (it never reads the database).

Both servers are first given series in every family: instances stored through POST /instances,
create-dicom requests (PNG, tags only, a rejected one), plugin and core jobs. Targets are printed,
never asserted.

    .venv/test/bin/python benchmarks/metrics.py [--leg bookworm|forky] [--json FILE]
"""
import json
import statistics
import sys
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench import Failure, abba, machine, markdown_table, ok, open_leg, options, report, servers, verdict
from create_dicom_cases import png_data_uri  # tests/integration, on sys.path once bench is imported
from ingest import dicom_files, store_all  # same files, same clients

TARGET = 2.0  # plugin route / core route median at most this
WARMUP = 10  # untimed scrapes per route before a case
SEED_INSTANCES = 20  # stored through POST /instances before the first case
CREATE_DICOM = 10  # synchronous create-dicom requests with a PNG (as many again with tags only)
PLUGIN_JOBS = 3  # asynchronous create-dicom jobs, waited for
GROWTH_INSTANCES = 2000  # stored on server A before the last case
ROOT = "/advanced-rest"
OWN = ROOT + "/metrics"
CORE = "/tools/metrics-prometheus"
OFF = {"AdvancedRest": {"ServeCoreRoutes": False}}


def seed(server):
    """Give every family series: stored instances, create-dicom (200 and 400), plugin and core jobs."""
    files = dicom_files(SEED_INSTANCES, patient_id="BENCH-METRICS-SEED", patient_name="Benchmark^Metrics")
    store_all(server, files)
    png = png_data_uri("L", 64, 64)
    created = None
    for i in range(CREATE_DICOM):
        created = ok(server.post(ROOT + "/tools/create-dicom",
                                 data=json.dumps({"Tags": {"PatientName": "Benchmark^Metrics"}, "Content": png})),
                     "create-dicom (PNG)")
        ok(server.post(ROOT + "/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "Benchmark^Tags"}})),
           "create-dicom (tags only)")
    bad = server.post(ROOT + "/tools/create-dicom", data=json.dumps({"Tags": {"NoSuchTag": "x"}}))
    if bad.status_code != 400:
        raise Failure(f"create-dicom with an unknown tag: HTTP {bad.status_code}, wanted 400")
    for _ in range(PLUGIN_JOBS):
        job = ok(server.post(ROOT + "/tools/create-dicom", data=json.dumps({"Tags": {}, "Asynchronous": True})),
                 "asynchronous create-dicom")["ID"]
        ok(server.get(f"{ROOT}/jobs/{job}/wait", params={"timeout": 60}, timeout=70), f"wait {job}")
    study = ok(server.get(f"/instances/{created['ID']}/study"), "GET /instances/{id}/study")["ID"]
    job = ok(server.post(f"/studies/{study}/archive", data=json.dumps({"Asynchronous": True})),
             "asynchronous archive")["ID"]
    ok(server.get(f"{ROOT}/jobs/{job}/wait", params={"timeout": 60}, timeout=70), f"wait {job}")


def scrape(session, url):
    """GET url, body read; return (seconds, body text). Raises Failure on non-200."""
    start = time.perf_counter()
    answer = session.get(url, timeout=60)
    body = answer.content
    elapsed = time.perf_counter() - start
    if answer.status_code != 200:
        raise Failure(f"GET {url}: HTTP {answer.status_code}: {answer.text[:500]}")
    return elapsed, body.decode("utf-8")


def shape(text):
    """(bytes, families, samples) of an exposition text; parsing it proves it valid."""
    families = list(text_string_to_metric_families(text))
    return len(text.encode()), len(families), sum(len(f.samples) for f in families)


def scrape_case(urls, repeat):
    """Alternate GETs of {role: url} (ABBA), warm-up first; return {role: median ms, s list, shape}."""
    session = requests.Session()
    times = {role: [] for role in urls}
    last = {}
    for i, role in abba(urls, WARMUP + repeat):
        elapsed, last[role] = scrape(session, urls[role])
        if i >= WARMUP:
            times[role].append(elapsed)
    session.close()
    result = {"n": repeat}
    for role in urls:
        size, families, samples = shape(last[role])
        result[role] = {"url": urls[role], "ms": 1000 * statistics.median(times[role]), "s": times[role],
                        "bytes": size, "families": families, "samples": samples}
    return result


def count_instances(server):
    return ok(server.get("/statistics"), "GET /statistics")["CountInstances"]


# -- report ---------------------------------------------------------------------------------------

def describe(r):
    return f"{r['bytes'] / 1024:.1f} KiB, {r['samples']} samples"


def table(results, m):
    lines = []
    a = results["routes"]
    ratio = a["plugin"]["ms"] / a["core"]["ms"]
    lines.append(f"| server A (ServeCoreRoutes off, {a['instances']} instances): core `{CORE}` ({describe(a['core'])}) "
                 f"vs plugin `{OWN}` ({describe(a['plugin'])}), n={a['n']} each | {a['core']['ms']:.2f} | "
                 f"{a['plugin']['ms']:.2f} | {ratio:.3f} | <= {TARGET:.1f} {verdict(ratio <= TARGET)} |")
    c = results["combined"]
    ratio = c["combined"]["ms"] / c["core"]["ms"]
    lines.append(f"| server A's core `{CORE}` ({describe(c['core'])}) vs server B's combined `{CORE}` "
                 f"(ServeCoreRoutes on: core + plugin, {describe(c['combined'])}), n={c['n']} each | "
                 f"{c['core']['ms']:.2f} | {c['combined']['ms']:.2f} | {ratio:.3f} | informative |")
    g = results["grown"]
    ratio = g["plugin"]["ms"] / a["plugin"]["ms"]
    lines.append(f"| plugin `{OWN}` on server A: {a['instances']} vs {g['instances']} instances "
                 f"({describe(a['plugin'])} / {describe(g['plugin'])}), n={g['n']} each | {a['plugin']['ms']:.2f} | "
                 f"{g['plugin']['ms']:.2f} | {ratio:.3f} | informative (flat expected) |")
    ratio = g["core"]["ms"] / a["core"]["ms"]
    lines.append(f"| core `{CORE}` on server A: {a['instances']} vs {g['instances']} instances | {a['core']['ms']:.2f} | "
                 f"{g['core']['ms']:.2f} | {ratio:.3f} | informative |")
    ratio = g["plugin"]["ms"] / g["core"]["ms"]
    lines.append(f"| server A with {g['instances']} instances: core `{CORE}` vs plugin `{OWN}`, n={g['n']} each | "
                 f"{g['core']['ms']:.2f} | {g['plugin']['ms']:.2f} | {ratio:.3f} | <= {TARGET:.1f} "
                 f"{verdict(ratio <= TARGET)} |")
    return markdown_table("baseline median ms", "compared median ms", lines, m)


def add_options(parser):
    parser.add_argument("--repeat", type=int, default=200,
                        help="timed scrapes per route and case; default %(default)s")
    parser.add_argument("--instances", type=int, default=GROWTH_INSTANCES,
                        help="instances stored on server A before the last case; default %(default)s")


def main():
    args = options(__doc__, add_options)
    leg = open_leg(args.leg)
    began = time.monotonic()
    results = {"target": TARGET, "warmup": WARMUP}

    print(f"starting two Orthanc servers ({leg.name}) with the plugin ...", file=sys.stderr)
    with servers(leg, ("metrics-off", {"plugin": True, "config": OFF}),
                 ("metrics-on", {"plugin": True})) as (a, b):
        m = machine(leg, a, a)
        results["machine"] = m
        for server in (a, b):
            seed(server)

        t0 = time.monotonic()
        results["routes"] = dict(scrape_case({"core": a.url + CORE, "plugin": a.url + OWN}, args.repeat),
                                 instances=count_instances(a))
        r = results["routes"]
        print(f"  server A: core {r['core']['ms']:.2f} ms, plugin {r['plugin']['ms']:.2f} ms "
              f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)

        t0 = time.monotonic()
        results["combined"] = scrape_case({"core": a.url + CORE, "combined": b.url + CORE}, args.repeat)
        r = results["combined"]
        print(f"  A core {r['core']['ms']:.2f} ms, B combined {r['combined']['ms']:.2f} ms "
              f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        b.terminate()  # stops while the last case runs

        t0 = time.monotonic()
        seconds, stored, _ = store_all(a, dicom_files(args.instances))
        print(f"  {stored} instances stored on A in {seconds:.1f} s", file=sys.stderr)
        results["grown"] = dict(scrape_case({"core": a.url + CORE, "plugin": a.url + OWN}, args.repeat),
                                instances=count_instances(a))
        r = results["grown"]
        print(f"  server A, {r['instances']} instances: core {r['core']['ms']:.2f} ms, plugin "
              f"{r['plugin']['ms']:.2f} ms ({time.monotonic() - t0:.0f} s)", file=sys.stderr)

    report(results, began, table(results, m), args.json)


if __name__ == "__main__":
    main()
