"""What the benchmark scripts here share: options, Orthanc servers, the ABBA order, the report.

- `options()`: --leg first, the script's own options, --json last.
- `open_leg()` and `servers()`: one leg of the test harness (tests/integration/servers.py) and
  Orthanc servers on it, all stopped (and the leg closed) however the run ends.
- `abba()`: the order that alternates two (or more) subjects so that drift hits both.
- `concurrently()`: client threads, each with its own Session, timed from a common start.
- `machine()`, `machine_line()`, `verdict()`, `markdown_table()`, `columns_table()`, `report()`: the
  markdown table every script prints, the machine line under it, and the raw numbers written with --json.

Importing this module puts tests/integration on sys.path, so `from servers import ...` and the
other test helpers import after it.
"""
import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time

import requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from servers import LEGS, Server  # noqa: E402  (the harness lives beside the tests)


class Failure(RuntimeError):
    """An answer a benchmark did not expect; the run stops (numbers after it would mean nothing)."""


def ok(answer, what):
    """The JSON of a 200 answer; Failure naming `what` otherwise."""
    if answer.status_code != 200:
        raise Failure(f"{what}: HTTP {answer.status_code}: {answer.text[:500]}")
    return answer.json()


# -- options, leg and servers -------------------------------------------------------------------

def options(doc, add, json_help="write the raw numbers (seconds) to FILE", legs=None):
    """Parse the command line: --leg (one of `legs`, default all legs), the options `add(parser)` adds,
    then --json FILE.

    The description is the first paragraph of `doc` (the script's docstring).
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--leg", choices=sorted(legs or LEGS), default="bookworm")
    add(parser)
    parser.add_argument("--json", metavar="FILE", help=json_help)
    return parser.parse_args()


def open_leg(name):
    """The leg called `name`, not opened yet; exits with the reason when it cannot run here."""
    leg = LEGS[name]()
    reason = leg.unavailable_reason()
    if reason:
        sys.exit(f"leg {leg.name} cannot run here: {reason}")
    return leg


@contextlib.contextmanager
def servers(leg, *specs):
    """Open `leg`, start one Server per (name, Server keyword arguments) and yield them in order.

    A server is named `<leg>-bench-<name>`. All are created, then started; on the way out,
    however it is taken, all are sent SIGTERM first (Orthanc takes seconds to stop), then closed,
    then the leg is closed.
    """
    leg.open()
    started = []
    try:
        for name, kwargs in specs:
            started.append(Server(leg, name=f"{leg.name}-bench-{name}", start=False, **kwargs))
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.terminate()
        for server in started:
            server.close()
        leg.close()


# -- measurement --------------------------------------------------------------------------------

def abba(subjects, rounds):
    """(i, subject) for i in range(rounds): subjects in order when i is even, reversed when odd."""
    subjects = list(subjects)
    for i in range(rounds):
        for subject in (subjects if i % 2 == 0 else subjects[::-1]):
            yield i, subject


def concurrently(clients, work):
    """Run work(k, session) on `clients` threads (session: the thread's own), all starting together.

    Returns (seconds from the common start until the last thread ends, [result of client k]).
    Re-raises the first exception a client raised.
    """
    sessions = [requests.Session() for _ in range(clients)]
    results = [None] * clients
    errors = []
    barrier = threading.Barrier(clients + 1)

    def client(k):
        barrier.wait()
        try:
            results[k] = work(k, sessions[k])
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for s in sessions:
        s.close()
    if errors:
        raise errors[0]
    return elapsed, results


# -- machine and report -------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return rev or "?"
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine(leg, core, plugin):
    """What the numbers were measured on; exits when `plugin` does not answer /advanced-rest/system."""
    system = core.get("/system").json()
    python = plugin.get("/plugins/python")
    ours = plugin.get("/advanced-rest/system")
    m = {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "leg": leg.name,
        "orthanc": system.get("Version", "?"),
        "python_plugin": python.json().get("Version", "?") if python.ok else "?",
        "python": leg.python_version(),
        "advanced_rest": ours.json().get("Version", "?") if ours.ok else "?",
        "git": git_revision(),
        "client_python": platform.python_version(),
    }
    if m["advanced_rest"] == "?":
        sys.exit(f"the plugin does not answer GET /advanced-rest/system; log {plugin.log_path}")
    return m


def machine_line(m):
    line = (f"Machine: nproc {m['nproc']}, {m['cpu']}; leg {m['leg']}: Orthanc {m['orthanc']}, "
            f"Python plugin {m['python_plugin']}, Python {m['python']}; advanced-rest "
            f"{m['advanced_rest']} ({m['git']}); client Python {m['client_python']}")
    if m.get("postgresql"):  # a cluster benchmark: the database's versions too
        line += f"; PostgreSQL {m['postgresql']}, Orthanc PostgreSQL plugin {m.get('postgresql_plugin', '?')}"
    if m.get("plugin_config"):
        line += f"; plugin server configuration + {json.dumps(m['plugin_config'])}"
    return line


def verdict(passed):
    return "PASS" if passed else "MISS"


def markdown_table(baseline, compared, rows, m):
    """The markdown table (case, the two medians, ratio, target), a blank line, the machine line."""
    return columns_table(["case", baseline, compared, "ratio", "target"], rows, m)


def columns_table(columns, rows, m):
    """A markdown table under `columns` (numbers right-aligned between the case and the target), a
    blank line, the machine line."""
    align = ["---"] + ["---:"] * (len(columns) - 2) + ["---"]
    return "\n".join([f"| {' | '.join(columns)} |",
                      f"|{'|'.join(align)}|",
                      *rows,
                      "",
                      machine_line(m)])


def report(results, began, table_text, json_file, raw=None):
    """Record the run's seconds, print the table, write raw(results) (default results) to json_file."""
    results["seconds"] = time.monotonic() - began
    print(table_text, flush=True)
    if json_file:
        with open(json_file, "w") as f:
            json.dump(raw(results) if raw else results, f, indent=1)
    print(f"({results['seconds']:.0f} s in all)", file=sys.stderr)
