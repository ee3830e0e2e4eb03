#!/usr/bin/env python3
"""Cluster chaos: the history checker of the tests (tests/integration/cluster_history.py) for N minutes.

Starts a throw-away PostgreSQL server and Orthanc replicas on it with the test harness (as
benchmarks/cluster.py does), each with `ConcurrentJobs` 1 and `AdvancedRest.Cluster.LeaseSeconds`
--lease (default 5). Client threads send random submissions (one instance or a small series),
cancels, pauses, resumes, resubmits, deletes, reads of /jobs/{id} and of the change feed to random
replicas while a nemesis, one fault at a time, kills a replica (SIGKILL) and starts it again,
freezes one (SIGSTOP) past its lease then thaws it, and stops PostgreSQL for a few seconds. After
the faults, every job is led to its end and the history checked (see cluster_history.py's doc).
Prints the figures: operations, faults injected, anomalies (the target is 0), each anomaly with
the operations involved. Exits 1 when there is any.

    .venv/test/bin/python benchmarks/cluster_chaos.py [--leg bookworm|forky] [--minutes 20] [--seed N]
        [--replicas 2] [--clients 3] [--lease 5] [--faults kill,freeze,postgres] [--json FILE]
"""
import json
import sys
import time

from bench import machine, open_leg, options
# tests/integration is first on sys.path once bench is imported.
import cluster as harness
import cluster_history
import postgres

LEGS = ("bookworm", "forky")  # replicas started by the harness on this machine (docker: tests only)


def add_options(parser):
    parser.add_argument("--minutes", type=float, default=20.0, help="workload and faults; default %(default)s")
    parser.add_argument("--seed", type=int, default=14, help="default %(default)s")
    parser.add_argument("--replicas", type=int, default=2, help="default %(default)s")
    parser.add_argument("--clients", type=int, default=3, help="client threads; default %(default)s")
    parser.add_argument("--lease", type=float, default=5.0, help="LeaseSeconds; default %(default)s")
    parser.add_argument("--faults", default="kill,freeze,postgres", help="kinds of faults; default %(default)s")


def main():
    args = options(__doc__, add_options, legs=LEGS)
    leg = open_leg(args.leg)
    reason = harness.unavailable_reason(leg) or postgres.unavailable_reason()
    if reason:
        sys.exit(f"no cluster on leg {leg.name}: {reason}")
    began = time.monotonic()
    leg.open()
    try:
        server = postgres.PostgresServer()
        try:
            server.start()
            database = server.create_database("chaos")
            replicas = harness.Cluster(leg, database, config={
                "ConcurrentJobs": 1, "JobsHistorySize": 100000,
                "AdvancedRest": {"Cluster": {"LeaseSeconds": args.lease}}})
            try:
                for _ in range(args.replicas):  # one after the other: the first creates Orthanc's schema
                    replicas.add_replica()
                m = machine(leg, replicas[0], replicas[0])
                print(f"PostgreSQL {server.version}; {args.replicas} replicas ({leg.name}); "
                      f"{args.minutes:g} min, seed {args.seed}", file=sys.stderr)
                result = cluster_history.run(list(replicas), args.minutes * 60, args.seed, args.lease,
                                             postgres=server, clients=args.clients,
                                             kinds=tuple(args.faults.split(",")),
                                             log=lambda text: print(text, file=sys.stderr))
                logs = {s.name: s.log_path for s in replicas}
            finally:
                replicas.close()
                server.drop_database(database)
        finally:
            server.close()
    finally:
        leg.close()
    history = result.history
    print(result.summary())
    print(f"\n{leg.name}: {len(history.ops)} operations, {len(history.jobs)} jobs, {len(history.faults)} faults, "
          f"{len(result.anomalies)} anomalies (target 0) in {time.monotonic() - began:.0f} s; "
          f"machine: {m.get('cpu', '?')}; logs: {logs}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"leg": leg.name, "minutes": args.minutes, "seed": args.seed, "operations": len(history.ops),
                       "jobs": len(history.jobs), "faults": [str(f) for f in history.faults],
                       "anomalies": [[kind, text, [str(op) for op in ops]] for kind, text, ops in result.anomalies]},
                      f, indent=2)
    sys.exit(1 if result.anomalies else 0)


if __name__ == "__main__":
    main()
