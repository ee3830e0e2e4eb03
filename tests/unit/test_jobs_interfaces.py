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
    (interfaces.Executor, (Engine,)),
], ids=["jobs", "feed", "executor"])
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


def test_the_cluster_calls_only_what_the_executor_declares():
    """Every method the cluster calls on its engine is one interfaces.Executor declares."""
    import ast
    import inspect as inspect_
    from advanced_rest.jobs.cluster import replica
    tree = ast.parse(inspect_.getsource(replica))
    called = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
              and isinstance(node.value, ast.Attribute) and node.value.attr == "_engine"}
    assert called
    assert called <= set(_methods(interfaces.Executor)), called
