"""The cluster's history under faults (issue 14): cluster_history.py's seeded workload and nemesis on
two replicas, 75 s on each Debian leg (replicas killed and restarted, frozen past
their lease, PostgreSQL stopped for a few seconds), a shorter run without the PostgreSQL outage on
the docker leg (its PostgreSQL runs in a container the harness does not stop); then every check of
cluster_history.check, and zero anomalies. Each leg runs its own seed (14 on bookworm, then 15, 16...):
the legs together try several schedules of faults, each the same from run to run.

    ADVANCED_REST_HISTORY_SECONDS=30 ADVANCED_REST_HISTORY_SEED=7 to develop with a shorter or another run.
"""
import os

import pytest

import cluster_history
from servers import LEGS, DockerLeg

LEASE = 5  # seconds
SEED = os.environ.get("ADVANCED_REST_HISTORY_SEED")  # default: 14 + the leg's rank in LEGS
SECONDS = float(os.environ.get("ADVANCED_REST_HISTORY_SECONDS", "75"))
DOCKER_SECONDS = min(SECONDS, 45.0)


@pytest.mark.cluster(config={"AdvancedRest": {"Cluster": {"LeaseSeconds": LEASE}},
                             "ConcurrentJobs": 1, "JobsHistorySize": 5000})
def test_the_clusters_history_under_kills_freezes_and_outages_has_no_anomaly(cluster, request):
    docker = isinstance(cluster.leg, DockerLeg)
    postgres = None if docker else request.getfixturevalue("postgres")
    seed = int(SEED) if SEED else 14 + list(LEGS).index(cluster.leg.name)
    print("history seed %d" % seed)
    result = cluster_history.run(list(cluster), DOCKER_SECONDS if docker else SECONDS, seed, LEASE,
                                 postgres=postgres, clients=3,
                                 kinds=("kill", "freeze") if docker else ("kill", "freeze", "postgres"),
                                 log=print)
    summary = result.summary()
    print("\n" + summary)
    assert result.history.faults, "the nemesis injected no fault"
    assert result.history.jobs, "no job was accepted"
    assert not result.anomalies, summary
