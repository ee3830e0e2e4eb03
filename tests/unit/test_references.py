"""references.py: what a Python plugin keeps of a REST callback's arguments, told from reference counts.

The decision is checked on tables of counts, then on this interpreter's own counts: a stand-in for
Python plugin 4.0's C wrapper calls a route with keyword arguments of which it keeps, as 4.0 does,
one reference too many (Py_IncRef through ctypes), and the probe must find exactly those, and giving
them back must leave exactly what a wrapper that keeps nothing leaves.
"""
import collections
import ctypes

import pytest

from advanced_rest import references

_api = ctypes.PyDLL(None)
INCREF, DECREF = _api.Py_IncRef, _api.Py_DecRef
for _function in (INCREF, DECREF):
    _function.argtypes, _function.restype = [ctypes.py_object], None


# ---- the decision, from counts ----------------------------------------------------------------

def sample(kind, arrival, extra):
    return (kind, object(), arrival, extra)


PLUGIN_4_0 = [sample("uri", 5, 0), sample("method", 8, 1), sample("groups", 8, 1), sample("groups item", 4, 0),
              sample("headers", 8, 1), sample("get", 8, 1), sample("get value", 5, 1), sample("get value", 5, 1),
              sample("uri", 5, 0), sample("method", 8, 1), sample("groups", 8, 1), sample("groups item", 4, 0),
              sample("headers", 8, 1), sample("body", 8, 1)]


def test_what_plugin_4_0_keeps_is_found_and_headers_values_go_with_get_values():
    kept, problem = references.decide(PLUGIN_4_0)
    assert problem is None
    assert kept == {"method": 8, "groups": 8, "headers": 8, "get": 8, "get value": 5, "headers value": 5,
                    "body": 8}
    assert references.describe(kept) == "method, groups, headers, get, body, each value of headers and get"


def test_a_plugin_that_keeps_nothing_is_left_alone():
    assert references.decide([(kind, obj, arrival, 0) for kind, obj, arrival, _ in PLUGIN_4_0]) == ({}, None)


@pytest.mark.parametrize("samples, named", [
    (PLUGIN_4_0 + [sample("body", 8, 2)], "a body has +2 references"),
    (PLUGIN_4_0 + [sample("body", 8, -1)], "a body has -1 references"),
    (PLUGIN_4_0 + [sample("get value", 5, 0)], "some get value objects are kept, others not"),
    (PLUGIN_4_0 + [sample("method", 9, 1)], "the method objects kept arrive with [8, 9] references"),
    ([sample("method", 1, 1)], "the method objects kept arrive with [1] references"),
], ids=["two-more", "one-fewer", "sometimes-kept", "two-arrival-counts", "nobody-else-holds-it"])
def test_counts_it_cannot_explain_give_nothing_back(samples, named):
    kept, problem = references.decide(samples)
    assert kept == {} and named in problem


def test_an_unseen_kind_is_decided_only_by_the_one_in_its_place():
    kept, _ = references.decide([sample("headers value", 5, 1)])
    assert kept == {"headers value": 5, "get value": 5}
    kept, _ = references.decide([sample("headers value", 5, 0), sample("get value", 5, 1)])
    assert kept == {"get value": 5}
    kept, _ = references.decide([sample("body", 8, 1)])
    assert kept == {"body": 8}


def test_only_objects_with_the_count_of_a_kept_one_are_released():
    body, method, uri = b"xy", "GET", "/u"
    measured = [("uri", uri, 8), ("method", method, 7), ("body", body, 8), ("groups", (), 10 ** 9)]
    assert references.releasable(measured, {"body": 8, "method": 8, "groups": 8}) == [body]


def test_the_check_names_what_giving_back_did_not_restore():
    good, more, fewer = sample("body", 8, 0), sample("method", 8, 1), sample("get", 8, -1)
    assert references.check([good]) == []
    assert references.check([good, more, fewer]) == [more, fewer]


# ---- on this interpreter's counts --------------------------------------------------------------

DECREF_AT = _api["Py_DecRef"]  # a function object of its own: by address, for what nobody else holds
DECREF_AT.argtypes, DECREF_AT.restype = [ctypes.c_void_p], None


class Wrapper:
    """A stand-in for the Python plugin's C wrapper: builds the keyword arguments with new objects, keeps
    one reference to those of the kinds in `keeps` (as 4.0 does: counted by address only, so that
    nothing else holds them), calls the route; `close()` gives back what the route did not."""

    def __init__(self, keeps):
        self.keeps = keeps
        self.kept = collections.Counter()  # address -> references kept

    def call(self, route, uri, method, groups, get=None, headers=None, body=None):
        kw = {"method": method, "groups": groups, "headers": dict(headers or {})}
        if get is not None:
            kw["get"] = dict(get)
        if body is not None:
            kw["body"] = body
        for kind, obj, _ in references.measure(uri, kw):
            if kind in self.keeps:
                INCREF(obj)
                self.kept[id(obj)] += 1
        route(None, uri, **kw)

    def close(self):
        for address, count in self.kept.items():
            for _ in range(count):
                DECREF_AT(address)
        self.kept.clear()


def fresh(text):
    return "".join([text, "."])  # built at run time: a new object, never interned


class Probe:
    """What host.py's route wrapper does: give back what is known to be kept, record the probe's requests."""

    def __init__(self, wrapper):
        self.wrapper, self.kept, self.records, self.released = wrapper, {}, [], []

    def route(self, output, uri, **request):
        measured = references.measure(uri, request)
        for obj in references.releasable(measured, self.kept):
            DECREF(obj)
            self.wrapper.kept[id(obj)] -= 1
            self.released.append(id(obj))
        self.records.append(references.Record(uri, dict(request), measured))

    def run(self):
        self.records = []
        self.wrapper.call(self.route, fresh("/probe/1"), fresh("GET"), (fresh("g1"),), get={"a": fresh("v1")},
                          headers={"x": fresh("h1")})
        self.wrapper.call(self.route, fresh("/probe/2"), fresh("POST"), (fresh("g2"),),
                          body=fresh("body").encode())
        records, self.records = self.records, []
        samples = []
        for record in records:
            samples += references.extras(record, references.control(record, lambda i: fresh("c%d" % i)))
        return samples


ALL = {"method", "groups", "headers", "headers value", "get", "get value", "body"}


@pytest.mark.parametrize("keeps", [
    ALL,  # Python plugin 4.0
    {"body", "headers value"},
    {"groups", "get"},  # their items are held by a kept container, not kept themselves
    {"uri"},
    set(),  # 4.1 and later
], ids=["plugin-4.0", "body-and-header-values", "containers-only", "uri", "nothing"])
def test_the_probe_finds_exactly_what_is_kept_and_giving_back_restores_it(keeps):
    wrapper = Wrapper(keeps)
    probe = Probe(wrapper)
    try:
        kept, problem = references.decide(probe.run())
        assert problem is None
        assert set(kept) == keeps
        probe.kept = kept
        assert references.check(probe.run()) == []
        assert len(probe.released) == len([kind for kind, _, _, _ in PLUGIN_4_0_SHAPE if kind in keeps])
    finally:
        wrapper.close()


# The kinds of the probe's two requests above, in measure's order.
PLUGIN_4_0_SHAPE = [sample(kind, 0, 0) for kind in (
    "uri", "method", "groups", "groups item", "headers", "headers value", "get", "get value",
    "uri", "method", "groups", "groups item", "headers", "body")]


def test_shared_objects_are_never_released():
    """The empty tuple, b"" and one-character strings are shared by everyone: their counts never match."""
    wrapper = Wrapper(ALL)
    probe = Probe(wrapper)
    try:
        probe.kept, _ = references.decide(probe.run())
        probe.released = []
        wrapper.call(probe.route, fresh("/shared"), fresh("POST"), (), headers={"x": "1"}, body=b"")
        assert not {id(()), id(b""), id("1")} & set(probe.released)
        assert len(probe.released) == 2  # the method and the headers dict
    finally:
        probe.records = []
        wrapper.close()
