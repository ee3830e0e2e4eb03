"""What the Python plugin keeps of a REST callback's arguments, told from reference counts (issue 26).

Python plugin 4.0's wrapper of REST callbacks (orthanc-python 4.0, `RestCallbacks.cpp`) stores in the
keyword arguments new objects that it never releases: the method, the groups tuple, the headers and
get dicts and each of their values, the body. Each stays with one reference too many, for the life
of the process (4.1 fixed it). The uri and the groups' items are handed over (stolen), not kept.

host.py's self-test sends requests to a probe route of its own and keeps what the callback received;
once the call is over, each object's count is compared with that of a new object in the same place
(`control`): one reference more is one kept. Only then, and only for an object whose count at arrival
is exactly what a kept object of its kind showed, is that reference given back. Pure: host.py calls
the interpreter.
"""
import collections
import sys

# Keyword argument -> the kind of its items (None: it has none). Orthanc passes `get` for GET only and
# `body` for POST and PUT.
ARGUMENTS = (("method", None), ("groups", "groups item"), ("headers", "headers value"),
             ("get", "get value"), ("body", None))
# Kinds that sit in the same place at the callback (a value of a dict passed as a keyword argument) and
# that 4.0 builds with the same code: the SDK's calls carry no headers, so the probe sees only get values.
SAME_PLACE = {"headers value": "get value", "get value": "headers value"}
LOGGED = ("uri", "method", "groups", "groups item", "headers", "headers value", "get", "get value", "body")

# One request the probe route received: its uri, a copy of its keyword arguments, `measure` at arrival.
Record = collections.namedtuple("Record", "uri request arrival")


def measure(uri, request, count=sys.getrefcount):
    """[(kind, object, reference count)] of a callback's arguments, in a fixed order."""
    found = [("uri", uri, count(uri))]
    for name, items in ARGUMENTS:
        value = request.get(name)
        if value is None:
            continue
        found.append((name, value, count(value)))
        if items is not None:
            for item in (value.values() if isinstance(value, dict) else value):
                found.append((items, item, count(item)))
    return found


def control(record, fresh, count=sys.getrefcount):
    """A Record of the same shape as `record` made of new objects (`fresh(i)`: a new str of a few
    characters, never interned), held as the record holds its own."""
    made = iter(range(1 << 30))
    request = {}
    for name, value in record.request.items():
        if isinstance(value, dict):
            request[name] = {key: fresh(next(made)) for key in value}
        elif isinstance(value, tuple):
            request[name] = tuple(fresh(next(made)) for _ in value)
        elif isinstance(value, bytes):
            request[name] = fresh(next(made)).encode("ascii")
        else:
            request[name] = fresh(next(made))
    uri = fresh(next(made))
    return Record(uri, request, measure(uri, request, count))


def extras(record, control_record, count=sys.getrefcount):
    """[(kind, object, count at arrival, references beyond the control's)] of a record, once its call is over.

    Raises:
        ValueError: the control has another shape.
    """
    own = measure(record.uri, record.request, count)
    other = measure(control_record.uri, control_record.request, count)
    if [kind for kind, _, _ in own] != [kind for kind, _, _ in other] or len(own) != len(record.arrival):
        raise ValueError("the control has another shape than the probe's request")
    return [(kind, obj, arrival, have - expected)
            for (kind, obj, have), (_, _, expected), (_, _, arrival) in zip(own, other, record.arrival)]


def decide(samples):
    """({kind: count at arrival of an object kept}, problem or None) from `extras` of the probe's requests.

    A kind is kept when each of its objects had exactly one reference beyond its control's, all with
    the same count at arrival (at least 2: the kept one and the caller's own); none when they had none.
    Anything else is a problem, and then nothing is given back. A kind the probe could not see takes
    the decision of the one in the same place (SAME_PLACE).
    """
    seen = {}
    for kind, _, arrival, extra in samples:
        if extra not in (0, 1):
            return {}, "a %s has %+d references beyond a new object's" % (kind, extra)
        seen.setdefault(kind, []).append((arrival, extra))
    kept = {}
    for kind, pairs in seen.items():
        extra = {extra for _, extra in pairs}
        if len(extra) > 1:
            return {}, "some %s objects are kept, others not" % kind
        if extra == {1}:
            arrivals = sorted({arrival for arrival, _ in pairs})
            if len(arrivals) != 1 or arrivals[0] < 2:
                return {}, "the %s objects kept arrive with %s references" % (kind, arrivals)
            kept[kind] = arrivals[0]
    for kind, other in SAME_PLACE.items():
        if kind not in seen and other in kept:
            kept[kind] = kept[other]
    return kept, None


def releasable(measured, kept):
    """The objects of `measured` whose count is exactly the one a kept object of their kind arrives with."""
    return [obj for kind, obj, count in measured if kept.get(kind) == count]


def check(samples):
    """The samples of a probe made while giving back that still show references beyond their control's
    (or fewer): [] when giving back restores exactly what a plugin that keeps nothing would have."""
    return [sample for sample in samples if sample[3] != 0]


def describe(kept):
    """The kinds kept, in words: "method, groups, headers, get, body, each value of headers and get"."""
    whole = [kind for kind in LOGGED if kind in kept and " " not in kind]
    items = {}
    for kind in LOGGED:
        if kind in kept and " " in kind:
            name, part = kind.split(" ")
            items.setdefault(part, []).append(name)
    return ", ".join(whole + ["each %s of %s" % (part, " and ".join(names)) for part, names in items.items()])
