#!/usr/bin/env python3
"""Soak: concurrent clients for minutes on one Orthanc with our plugin, or on a two-replica cluster.

The workload is tests/integration/soak_workload.py, which tests/integration/test_soak.py also runs for
one minute in `make test`: --clients threads (default 8) for --minutes (default 10), each mixing
synchronous and asynchronous create-dicom (one small PNG or JPEG, or a series of 2-10), jobs followed
with `wait` or the change feed, series cancelled while they run, `GET /jobs` with filters, metric
scrapes, and `POST /instances` of small pydicom files. One server of the leg with our plugin
(`JobsHistorySize` 100), or with --cluster two replicas on a throw-away PostgreSQL
(tests/integration/postgres.py, cluster.py), each request to a replica picked at random.

It prints requests per second, the errors (target 0: a 5xx, a connection error, an answer the request
should not get) with the first few, p50 and p99 per route, each Orthanc's VmRSS every minute (target:
less than 20 MB of growth from minute 2 to the end), and what the checks after the run found: every
instance the clients were told exists is there, once, nothing else is stored, and the cancelled jobs
left no instance. Targets are printed, never asserted.

    .venv/test/bin/python benchmarks/soak.py [--leg bookworm|forky|docker] [--cluster] [--minutes 10]
                                             [--clients 8] [--json FILE]
"""
import contextlib
import json
import os
import sys
import time

from bench import columns_table, machine, open_leg, options, report, servers, verdict
# tests/integration is first on sys.path once bench is imported: `cluster` is the harness's module.
import cluster as harness
import postgres
import soak_workload as soak

RSS_TARGET = 20.0  # MB of growth from SETTLE_MINUTES to the end
SETTLE_MINUTES = 2
CLUSTER_LEGS = ("bookworm", "trixie", "forky")  # replicas the harness starts on this machine


@contextlib.contextmanager
def targets(leg, cluster):
    """(the servers to soak, what to add to the machine line): one plugin server, or two replicas."""
    if not cluster:
        with servers(leg, ("soak", {"config": soak.SERVER_CONFIG})) as started:
            yield started, {}
        return
    reason = postgres.unavailable_reason() or harness.unavailable_reason(leg)
    if reason:
        sys.exit(f"no cluster on leg {leg.name}: {reason}")
    leg.open()
    database_server = postgres.PostgresServer()
    try:
        database_server.start()
        replicas = harness.Cluster(leg, database_server.create_database("soak"), config=soak.SERVER_CONFIG)
        try:
            for _ in range(2):  # one after the other: the first creates Orthanc's schema
                replicas.add_replica()
            index = replicas[0].get("/plugins/postgresql-index")
            yield list(replicas), {"postgresql": database_server.version,
                                   "postgresql_plugin": index.json().get("Version", "?") if index.ok else "?"}
        finally:
            replicas.close()
    finally:
        database_server.close()
        leg.close()


def summary(result, results):
    """The rows of the first table (what was done, errors, checks, memory) and the raw numbers."""
    rec, v, rss = result.recorder, result.verification, result.rss
    total = rec.requests()
    rows = [f"| requests, {result.clients} clients, {result.seconds / 60:.1f} min (operations: "
            f"{', '.join(f'{op} {n}' for op, n in rec.ops.most_common())}) | {total} = "
            f"{total / result.seconds:.1f} req/s | informative |"]
    kinds = "; ".join(f"{route} {status}: {n}" for (route, status), n in rec.error_kinds.most_common())
    rows.append(f"| errors (5xx, connection, unexpected answer) | {rec.errors}{f' ({kinds})' if kinds else ''} | "
                f"0 {verdict(rec.errors == 0)} |")
    problems = v.instance_problems()
    rows.append(f"| instances the clients were told exist (sync create-dicom, Success jobs' Content, "
                f"`POST /instances`): missing, series of the wrong size, duplicate IDs, duplicate SOPInstanceUIDs, "
                f"stored but never told of | {v.told} told: {len(v.missing)}, {len(v.wrong_series)}, "
                f"{len(v.duplicate_ids)}, {len(v.duplicate_uids)}, {len(v.unexpected)} | all 0 {verdict(not problems)} |")
    cancels = ", ".join(f"{what} {n}" for what, n in rec.cancels.most_common())
    rows.append(f"| series cancelled while running ({cancels}): jobs with an instance left | "
                f"{len(v.cancelled_left)} of {len(rec.cancelled)} | 0 {verdict(not v.cancelled_left)} |")
    last_minute = int(result.seconds // 60)
    settle = min(60 * SETTLE_MINUTES, result.seconds / 2)
    growth = rss.growth(settle)
    for name in rss.pids:
        minutes = ", ".join(f"{rss.at(60 * k)[1][name]:.0f}" for k in range(last_minute + 1))
        total, net = growth[name]
        kept = (f"; {total - net:.1f} MB of create-dicom bodies sent meanwhile, which this Python plugin keeps: "
                f"{net:+.1f} MB without them" if rss.keeps_bodies[name] else "")
        rows.append(f"| {name}: VmRSS MB at minute 0, 1, ... {last_minute}; at the end; growth from minute "
                    f"{settle / 60:.1f} to the end | {minutes}; {rss.samples[-1][1][name]:.0f}; {total:+.1f}{kept} | "
                    f"< {RSS_TARGET:g} MB {verdict(net < RSS_TARGET)} |")
    sent = sum(rec.sent.values()) / 1e6
    rows.append(f"| create-dicom bodies sent; checks after the run | {sent:.0f} MB; {result.verify_seconds:.0f} s | "
                "informative |")
    results.update(requests=total, seconds_soaked=result.seconds, errors=rec.errors, first_errors=rec.first_errors,
                   error_kinds=[[route, status, n] for (route, status), n in rec.error_kinds.items()],
                   ops=dict(rec.ops), cancels=dict(rec.cancels), told=v.told, problems=problems,
                   cancelled=len(rec.cancelled), cancelled_left=v.cancelled_left, rss=rss.samples,
                   rss_growth=growth, keeps_bodies=rss.keeps_bodies, sent=dict(rec.sent))
    return rows


def route_rows(rec, results):
    """Rows of the second table: requests, p50 and p99 per route."""
    rows, results["routes"] = [], {}
    for route, seconds in sorted(rec.latencies.items()):
        p50, p99 = soak.quantile_ms(seconds, 50), soak.quantile_ms(seconds, 99)
        results["routes"][route] = {"n": len(seconds), "p50_ms": p50, "p99_ms": p99}
        rows.append(f"| {route} | {len(seconds)} | {p50:.1f} | {p99:.1f} |")
    return rows


def add_options(parser):
    parser.add_argument("--minutes", type=float, default=10.0, help="default %(default)s")
    parser.add_argument("--clients", type=int, default=8, help="default %(default)s")
    parser.add_argument("--cluster", action="store_true",
                        help="two replicas on one PostgreSQL (bookworm or forky) instead of one server")
    parser.add_argument("--seed", type=int, default=1, help="of the clients' random choices; default %(default)s")


def main():
    args = options(__doc__, add_options)
    if args.cluster and args.leg not in CLUSTER_LEGS:
        sys.exit(f"--cluster runs on {', '.join(CLUSTER_LEGS)} (the docker leg's cluster: tests only)")
    leg = open_leg(args.leg)
    began = time.monotonic()
    results = {"minutes": args.minutes, "clients": args.clients, "cluster": args.cluster,
               "load": [" ".join(f"{x:.2f}" for x in os.getloadavg())]}
    with targets(leg, args.cluster) as (started, extra):
        m = dict(machine(leg, started[0], started[0]), **extra)
        print(f"soaking {', '.join(s.name for s in started)} for {args.minutes:g} min with {args.clients} "
              "clients ...", file=sys.stderr)
        result = soak.run(started, args.minutes, args.clients, args.seed,
                          progress=lambda text: print("  " + text, file=sys.stderr, flush=True))
    results["load"].append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
    results["machine"] = m
    first = columns_table(["measure", "value", "target"], summary(result, results), m)
    routes = "\n".join(["| route | requests | p50 ms | p99 ms |", "|---|---:|---:|---:|",
                        *route_rows(result.recorder, results)])
    where = "two replicas on one PostgreSQL" if args.cluster else "one server"
    text = (f"{first}; {where}, configuration + {json.dumps(soak.SERVER_CONFIG)}\n"
            f"Load average at start / end: {results['load'][0]} / {results['load'][1]}\n\n{routes}\n\n"
            "(`wait` and `changes` are long-polls: their latency includes waiting for a job.)")
    report(results, began, text, args.json)
    for route, status, excerpt in result.recorder.first_errors:
        print(f"error: {route}: {status}: {excerpt}", file=sys.stderr)
    for kind, items in result.verification.instance_problems().items():
        print(f"{kind}: {items[:10]}", file=sys.stderr)


if __name__ == "__main__":
    main()
