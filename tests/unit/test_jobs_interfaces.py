"""One server and the cluster implement the same interfaces (jobs/interfaces.py), signature by signature."""
import inspect

import pytest

from advanced_rest.jobs import interfaces
from advanced_rest.jobs.changes import ChangeFeed
from advanced_rest.jobs.cluster.feed import ClusterFeed
from advanced_rest.jobs.cluster.replica import Cluster
from advanced_rest.jobs.engine import Engine


def _methods(protocol):
    return [name for name, value in vars(protocol).items()
            if callable(value) and not name.startswith("_")]


@pytest.mark.parametrize("protocol,implementations", [
    (interfaces.Jobs, (Engine, Cluster)),
    (interfaces.Feed, (ChangeFeed, ClusterFeed)),
], ids=["jobs", "feed"])
def test_both_implementations_have_every_method_with_the_same_parameters(protocol, implementations):
    assert _methods(protocol)
    for implementation in implementations:
        for name in _methods(protocol):
            assert hasattr(implementation, name), "%s lacks %s" % (implementation.__name__, name)
            wanted = list(inspect.signature(getattr(protocol, name)).parameters)
            got = list(inspect.signature(getattr(implementation, name)).parameters)
            assert got == wanted, "%s.%s%s" % (implementation.__name__, name, got)


def test_the_cluster_offers_the_engine_its_fence():
    wanted = list(inspect.signature(interfaces.Fence.__call__).parameters)[1:]
    assert list(inspect.signature(Cluster.fence).parameters)[1:] == wanted
