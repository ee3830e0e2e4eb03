"""Fixtures that start real Orthanc servers, per leg (see servers.py).

    leg                 session, parametrized over the selected legs (ids: bookworm, trixie, forky, docker)
    core                session, Server without any plugin: the oracle
    plugin              session, Server with the Python plugin and our entrypoint
    orthanc_factory     function, orthanc_factory(plugin=True, config=None, args=(), **kw) -> Server,
                        stopped at the test's teardown
    postgres            session, PostgresServer started by the tests (postgres.py)
    postgres_database   function, a fresh Database with its own password user on it
    cluster             function, Cluster: Orthanc replicas on one database and storage (cluster.py);
                        @pytest.mark.cluster(replicas=2, config=None, env=None)

Legs come from --legs or $ADVANCED_REST_LEGS (comma list; default all). A leg that cannot run
here is skipped with the reason. On failure the logs of the servers a test used are added to its
report; the terminal summary names each leg's versions or why it was skipped.
"""
import json
import os

import pytest

from cluster import Cluster, cluster, docker_postgres  # noqa: F401 (fixtures)
from postgres import PostgresServer, postgres, postgres_database  # noqa: F401 (fixtures)
from servers import LEGS, Server, Teardowns, UrlLeg, probe_versions

# leg name -> "Orthanc ..., Python plugin ..., Python ..." or "skipped: ..." / "error: ..."
LEG_STATUS = {}
LOG_LIMIT = 30_000  # characters of one server's log in a failure report


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster(replicas=2, config=None, env=None): options of the cluster fixture")
    config.addinivalue_line("markers", "once: runs on the run's first leg only (with the tests that use no leg "
                                       "when scripts/run-tests.py gives them a process of their own)")


def selected_legs(config):
    """Return the legs chosen by --legs, else $ADVANCED_REST_LEGS, else all, in LEGS order;
    `url=http://host:8042` selects an Orthanc the user runs."""
    raw = config.getoption("--legs") or os.environ.get("ADVANCED_REST_LEGS") or ",".join(LEGS)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    urls = [n for n in names if n.startswith("url=")]
    unknown = [n for n in names if n not in LEGS and n not in urls]
    if unknown:
        raise pytest.UsageError(f"unknown leg(s) {', '.join(unknown)}; known: {', '.join(LEGS)}, url=URL")
    return [n for n in LEGS if n in names] + urls


def first_leg(config):
    """The first leg of the whole run: scripts/run-tests.py runs one pytest per leg and names it in
    $ADVANCED_REST_FIRST_LEG; a single pytest over several legs takes its first."""
    return os.environ.get("ADVANCED_REST_FIRST_LEG") or selected_legs(config)[0]


def pytest_collection_modifyitems(config, items):
    # The tests that use no leg (the cluster engine on PostgreSQL alone, the HTTP client) run once, not
    # once per leg: in a process of their own when scripts/run-tests.py says so ($ADVANCED_REST_LEGLESS
    # "only" there, "elsewhere" in the legs' processes), else with the run's first leg. That process
    # also runs the tests marked `once` (on the first leg, which it is given), so that the first leg's
    # process is no longer than the others.
    where = os.environ.get("ADVANCED_REST_LEGLESS")
    once = [item for item in items if "leg" not in getattr(item, "fixturenames", ())
            or item.get_closest_marker("once")]
    if where == "only":
        dropped = [item for item in items if item not in once]
    elif where == "elsewhere":
        dropped = once
    elif first_leg(config) not in selected_legs(config):
        dropped = [item for item in once if "leg" not in getattr(item, "fixturenames", ())]
    else:
        dropped = []
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def pytest_generate_tests(metafunc):
    if "leg" in metafunc.fixturenames:
        names = selected_legs(metafunc.config)
        ids = ["url" if name.startswith("url=") else name for name in names]
        metafunc.parametrize("leg", names, indirect=True, scope="session", ids=ids)


@pytest.fixture(scope="session")
def leg(request):
    """The current leg, opened for the session; skips when it cannot run here."""
    if request.param.startswith("url="):
        leg = UrlLeg(request.param[len("url="):])
    else:
        leg = LEGS[request.param]()
    reason = leg.unavailable_reason()
    if reason:
        LEG_STATUS[leg.name] = f"skipped: {reason}"
        pytest.skip(f"leg {leg.name}: {reason}")
    leg.open()
    try:
        if not isinstance(leg, UrlLeg):
            probe_versions(leg)
    except Exception as e:
        LEG_STATUS[leg.name] = f"error: {str(e).splitlines()[0]}"
        leg.close()
        raise
    LEG_STATUS[leg.name] = leg.summary()
    yield leg
    LEG_STATUS[leg.name] = leg.summary()  # with what the session learnt (the cluster's PostgreSQL)
    leg.close()


NO_OWN_SERVERS = "the url leg runs against a given Orthanc: tests that start servers of their own do not run"


@pytest.fixture(scope="session")
def core(leg):
    """Orthanc with no plugin on the current leg, for parity checks."""
    if isinstance(leg, UrlLeg):
        pytest.skip(NO_OWN_SERVERS)
    with Server(leg, plugin=False, name=f"{leg.name}-core") as server:
        yield server


@pytest.fixture(scope="session")
def plugin(leg):
    """Orthanc with our plugin on the current leg, default configuration (the url leg's Orthanc)."""
    if isinstance(leg, UrlLeg):
        yield leg.server
        return
    with Server(leg, plugin=True, name=f"{leg.name}-plugin") as server:
        yield server


class OrthancFactory:
    """Starts extra servers on one leg; `close()` stops them all."""

    def __init__(self, leg):
        self.leg = leg
        self.servers = []

    def __call__(self, plugin=True, config=None, args=(), **kw):
        """Return a started Server (see Server for env, name, timeout)."""
        server = Server(self.leg, plugin=plugin, config=config, args=args, **kw)
        self.servers.append(server)
        return server

    def close(self):
        """SIGTERM to every server now; their exits are waited for in the background (Teardowns)."""
        servers = list(self.servers)
        for server in servers:
            server.terminate()
        Teardowns.later(lambda: [server.close() for server in servers])


@pytest.fixture
def orthanc_factory(leg):
    """orthanc_factory(plugin=True, config=None, args=()) -> a started Server, stopped at teardown."""
    if isinstance(leg, UrlLeg):
        pytest.skip(NO_OWN_SERVERS)
    factory = OrthancFactory(leg)
    yield factory
    factory.close()


# -- logs in failure reports -------------------------------------------------------------------

def _used_servers(item):
    """Servers the test used: in its fixtures (directly or via a factory) or started during it."""
    found = []
    for value in getattr(item, "funcargs", {}).values():
        candidates = value.servers if isinstance(value, (OrthancFactory, Cluster)) else [value]
        found += [s for s in candidates if isinstance(s, Server)]
    first_new = getattr(item, "_orthanc_first_serial", None)
    if first_new is not None:
        found += [s for s in Server.live if s.serial >= first_new]
    unique = []
    for server in found:
        if server not in unique:
            unique.append(server)
    return unique


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Log offsets of the servers already running: the report shows what happened during the test.
    item._orthanc_offsets = {s: s._log_size() for s in Server.live}
    item._postgres_offsets = {s: s._log_size() for s in PostgresServer.live}
    item._orthanc_first_serial = max((s.serial for s in Server.live), default=0) + 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or getattr(item, "_orthanc_logs_reported", False):
        return
    item._orthanc_logs_reported = True
    offsets = getattr(item, "_orthanc_offsets", {})
    for server in _used_servers(item):
        start = offsets.get(server, 0)
        text = server.log_text(start)
        where = "since the test started" if start else "whole"
        if not text.strip():
            text = f"(nothing logged; full log {server.log_path})\n"
        elif len(text) > LOG_LIMIT:
            text = f"[... cut, full log {server.log_path}]\n" + text[-LOG_LIMIT:]
        report.sections.append((f"orthanc log {server.name} ({where})", text))
    if {"postgres", "postgres_database", "cluster"} & set(item.fixturenames):
        for server in PostgresServer.live:
            text = server.log_text(getattr(item, "_postgres_offsets", {}).get(server, 0))
            if text.strip():
                report.sections.append((f"postgresql log ({server.log_path})", text[-LOG_LIMIT:]))


# -- versions per leg in the summary -----------------------------------------------------------

def pytest_terminal_summary(terminalreporter, config):
    report = os.environ.get("ADVANCED_REST_LEG_REPORT")  # scripts/run-tests.py: one pytest per leg
    if report:
        with open(report, "w") as f:
            json.dump(LEG_STATUS, f)
    if not LEG_STATUS:
        return  # no integration test asked for a leg
    selected = selected_legs(config)
    terminalreporter.write_sep("-", "legs")
    for name in LEGS:
        if report and name not in selected:
            continue  # one pytest per leg: the others' lines come from their own processes
        status = LEG_STATUS.get(name)
        if status is None:
            status = ("skipped: not selected (--legs / ADVANCED_REST_LEGS)" if name not in selected
                      else "skipped: no test ran on it")
        terminalreporter.write_line(f"leg {name}: {status}")
    if "url" in LEG_STATUS:
        terminalreporter.write_line(f"leg url: {LEG_STATUS['url']}")
