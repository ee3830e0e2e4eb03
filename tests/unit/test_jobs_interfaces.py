"""One server and the cluster implement the same interfaces (jobs/interfaces.py), signature by signature, and the
workers ask of their store only what interfaces.JobStore declares."""
import inspect

import pytest

from advanced_rest.jobs import interfaces
from advanced_rest.jobs.changes import ChangeFeed
from advanced_rest.jobs.cluster.feed import ClusterFeed
from advanced_rest.jobs.cluster.replica import Cluster
from advanced_rest.jobs.local import LocalStore


def _methods(protocol):
    return [name for name, value in vars(protocol).items()
            if callable(value) and not name.startswith("_")]


@pytest.mark.parametrize("protocol,implementations", [
    (interfaces.Jobs, (LocalStore, Cluster)),
    (interfaces.Feed, (ChangeFeed, ClusterFeed)),
    (interfaces.JobStore, (LocalStore, Cluster)),
], ids=["jobs", "feed", "job-store"])
def test_both_implementations_have_every_method_with_the_same_parameters(protocol, implementations):
    assert _methods(protocol)
    for implementation in implementations:
        for name in _methods(protocol):
            assert hasattr(implementation, name), "%s lacks %s" % (implementation.__name__, name)
            wanted = list(inspect.signature(getattr(protocol, name)).parameters)
            got = list(inspect.signature(getattr(implementation, name)).parameters)
            assert got == wanted, "%s.%s%s" % (implementation.__name__, name, got)


def test_the_workers_call_only_what_the_job_store_declares():
    """Every method the pool calls on its store is one interfaces.JobStore declares: it keeps no state of a job."""
    import ast
    from advanced_rest.jobs import workers
    tree = ast.parse(inspect.getsource(workers))
    called = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
              and isinstance(node.value, ast.Attribute) and node.value.attr == "_store"}
    assert called == set(_methods(interfaces.JobStore)), called
