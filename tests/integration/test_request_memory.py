"""No memory kept per request (issue 26), measured from outside: Orthanc's VmRSS before and after.

Python plugin 4.0 (Debian 12) keeps one reference to each argument it hands to a REST callback: about
1.2 KB per small request and every POST body, for the life of the process. host.py gives those
references back once its self-test at start proved the leak on the running build (README, Memory).
Here, after a warm-up (the allocator's first growth, Orthanc's HTTP threads), 20,000 small requests
must keep at most 100 bytes each and 200 refused bodies of 0.5 MB at most 0.1 MB per MB posted (the
smaller of two rounds in a row), on every leg; the self-test's decision must be in the log, once.
"""
import collections
import concurrent.futures
import re
import time

import pytest

from fuzz_rules import memory_kib, orthanc_pid
from servers import Server, UrlLeg, new_session

ROOT = "/advanced-rest"
THREADS = 4
SMALL = 20_000
SMALL_WARM_UP = 4_000
KEPT_PER_REQUEST = 100  # bytes of VmRSS per small request, at most
BODIES = 200
BODIES_WARM_UP = 40
BODY_BYTES = 512 * 1024
MAX_REQUEST_BYTES = 64 * 1024  # AdvancedRest.MaxRequestBytes: every body is refused (413), read whole first
KEPT_PER_POSTED = 0.1  # MB of VmRSS per MB posted, at most
DECISION = re.compile(r"Self-test of the REST callbacks' references: ([^\n]*)")
DECISION_WAIT = 30  # seconds from the first answer to the self-test's line (it runs at ORTHANC_STARTED)


@pytest.fixture(scope="module")
def server(leg):
    """The plugin with a small MaxRequestBytes, once its self-test has decided."""
    if isinstance(leg, UrlLeg):
        pytest.skip("reads the Orthanc process's memory: not on the url leg")
    with Server(leg, plugin=True, config={"AdvancedRest": {"MaxRequestBytes": MAX_REQUEST_BYTES}},
                name=f"{leg.name}-memory") as server:
        deadline = time.monotonic() + DECISION_WAIT
        while not DECISION.search(server.log_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        yield server


def _send(server, count, call):
    """Statuses of `count` requests `call(session, url)`, from THREADS threads with a session each."""
    def run(share):
        session = new_session(server.session.auth)
        try:
            return collections.Counter(call(session, server.url).status_code for _ in range(share))
        finally:
            session.close()

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        shares = [count // THREADS + (i < count % THREADS) for i in range(THREADS)]
        return sum(pool.map(run, shares), collections.Counter())


def _system(session, url):
    return session.get(url + ROOT + "/system", timeout=60)


def _refused_body(session, url, body=b"{" + b" " * (BODY_BYTES - 2) + b"}"):
    return session.post(url + ROOT + "/tools/create-dicom", data=body, timeout=60)


def test_the_self_test_decision_is_logged_once(server, record_property):
    decisions = DECISION.findall(server.log_text())
    record_property("decisions", decisions)
    assert len(decisions) == 1, f"the self-test's decision, once in the log: {decisions}"
    plugin_version = server.get("/plugins/python").json().get("Version")
    if plugin_version == "4.0":  # Debian 12's: the leak is known (orthanc-python's RestCallbacks.cpp, fixed in 4.1)
        assert decisions[0].startswith("the Python plugin keeps"), decisions[0]
        assert all(name in decisions[0] for name in ("method", "groups", "headers", "get", "body")), decisions[0]
    else:
        assert decisions[0].startswith("no argument kept"), decisions[0]


def _kept_kib(server, count, call, expected):
    """VmRSS growth (KiB) over `count` requests, the smaller of two rounds in a row, after a warm-up.

    One round's growth includes the allocator's steps (up to ~1.5 MiB seen over 20,000 requests on
    bookworm, 0 in the next round): a leak shows in both, noise seldom twice.
    """
    pid = orthanc_pid(server)
    rounds = []
    for _ in range(2):
        before = memory_kib(pid)
        assert _send(server, count, call) == {expected: count}
        rounds.append((memory_kib(pid) - before, before))
    return min(rounds)


def test_small_requests_keep_no_memory(server, record_property):
    assert _send(server, SMALL_WARM_UP, _system) == {200: SMALL_WARM_UP}
    kept_kib, before = _kept_kib(server, SMALL, _system, 200)
    kept = kept_kib * 1024 / SMALL
    record_property("kept_bytes_per_request", round(kept, 1))
    assert kept <= KEPT_PER_REQUEST, (f"{SMALL} GET {ROOT}/system: VmRSS {before / 1024:.1f} -> "
                                      f"{(before + kept_kib) / 1024:.1f} MiB, {kept:.0f} bytes kept per request")


def test_refused_bodies_keep_no_memory(server, record_property):
    assert _send(server, BODIES_WARM_UP, _refused_body) == {413: BODIES_WARM_UP}
    kept_kib, before = _kept_kib(server, BODIES, _refused_body, 413)
    kept = kept_kib / 1024 / (BODIES * BODY_BYTES / 1024 / 1024)
    record_property("kept_mib_per_mib_posted", round(kept, 3))
    assert kept <= KEPT_PER_POSTED, (f"{BODIES} bodies of {BODY_BYTES} bytes: VmRSS {before / 1024:.1f} -> "
                                     f"{(before + kept_kib) / 1024:.1f} MiB, {kept:.2f} MiB kept per MiB posted")
