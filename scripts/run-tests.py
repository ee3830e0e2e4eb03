"""run-tests.py: `make test`'s runner. Unit tests once, and one pytest process per leg, side by side.

    ADVANCED_REST_LEGS   comma list of legs (default: all, in tests/integration/servers.py's order);
                         url=http://host:8042 runs the url leg too
    PYTEST_ARGS          options for every pytest process (e.g. "-k jobs -x"); paths among them
                         (tests/unit/..., tests/integration/...) pick what each process runs

Each leg gets its own range of ports ($ADVANCED_REST_PORTS, below the kernel's ephemeral range),
its own log, JUnit report and pytest cache under build/test-results/; its servers' folders are
temp folders of their own (servers.py). The output ends with one line per leg (its versions,
duration and counts); the exit status is 1 if any process failed.
Runs with the test venv's Python (make test does).
"""
import json
import os
import re
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "build", "test-results")
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from servers import LEGS  # noqa: E402 (the legs and their order)

PORTS_FROM, PORTS_PER_LEG = 20000, 2000  # 20000-29999 for four legs and the legless, under 32768 (ip_local_port_range)
HEARTBEAT = 60  # seconds between two progress lines
NO_TESTS = 5  # pytest's exit code when nothing was selected (e.g. -k matching no test of a leg)
LEGLESS = "legless"  # the process of the integration tests that use no leg, and of those run once (on the first leg)


def _split_args(args):
    """(options, unit paths, integration paths) of PYTEST_ARGS."""
    options, unit, integration = [], [], []
    for arg in args:
        path = arg.split("::")[0]
        if not arg.startswith("-") and os.path.exists(os.path.join(REPO, path)):
            norm = os.path.normpath(path)
            if norm.startswith(os.path.join("tests", "unit")):
                unit.append(arg)
                continue
            if norm.startswith(os.path.join("tests", "integration")):
                integration.append(arg)
                continue
        options.append(arg)
    return options, unit, integration


class Run:
    """One pytest process: the unit tests, or one leg's integration tests."""

    def __init__(self, name, argv, env):
        self.name = name
        self.log_path = os.path.join(RESULTS, f"{name}.log")
        self.junit = os.path.join(RESULTS, f"{name}.xml")
        self.status_path = os.path.join(RESULTS, f"{name}.json")
        for path in (self.junit, self.status_path):
            if os.path.exists(path):
                os.remove(path)
        argv = argv + [f"--junitxml={self.junit}", "-o", f"cache_dir={os.path.join(RESULTS, '.cache-' + name)}"]
        self.began = time.monotonic()
        self.ended = None
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **env, "ADVANCED_REST_LEG_REPORT": self.status_path})

    def poll(self):
        code = self.process.poll()
        if code is not None and self.ended is None:
            self.ended = time.monotonic()
        return code

    @property
    def seconds(self):
        return (self.ended or time.monotonic()) - self.began

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def progress(self):
        found = re.findall(r"\[ *(\d+)%\]", self.log()[-2000:])
        return f"{found[-1]}%" if found else "starting"

    def counts(self):
        """(passed, failed, skipped) from the JUnit report; failed includes errors."""
        try:
            root = ElementTree.parse(self.junit).getroot()
        except (FileNotFoundError, ElementTree.ParseError):
            return None
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        total = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
        failed = total["failures"] + total["errors"]
        return total["tests"] - failed - total["skipped"], failed, total["skipped"]

    def failed(self):
        return self.process.returncode not in (0, NO_TESTS)

    def leg_status(self, leg):
        try:
            with open(self.status_path) as f:
                status = json.load(f)
        except (FileNotFoundError, ValueError):
            status = {}
        return status.get(leg, "no test ran on it")


def _duration(seconds):
    return "%dm%02ds" % divmod(round(seconds), 60)


def _report_tail(text):
    """What to show of a process's log: from its failures on when it failed, else its summary."""
    for marker in ("= FAILURES =", "= ERRORS =", "short test summary info"):
        at = text.find(marker)
        if at >= 0:
            return text[text.rfind("\n", 0, at) + 1:]
    return "\n".join(text.rstrip().splitlines()[-15:]) + "\n"


def main():
    os.makedirs(RESULTS, exist_ok=True)
    raw = os.environ.get("ADVANCED_REST_LEGS") or ",".join(LEGS)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in LEGS and not n.startswith("url=")]
    if unknown:
        print(f"unknown leg(s) {', '.join(unknown)}; known: {', '.join(LEGS)}, url=URL", file=sys.stderr)
        return 2
    legs = [n for n in LEGS if n in names] + [n for n in names if n.startswith("url=")]
    options, unit_paths, integration_paths = _split_args(shlex.split(os.environ.get("PYTEST_ARGS", "")))
    paths_given = bool(unit_paths or integration_paths)
    pytest = [sys.executable, "-m", "pytest"]

    runs = []
    if unit_paths or not paths_given:
        runs.append(("unit", Run("unit", pytest + (unit_paths or ["tests/unit"]) + options, {})))
    if integration_paths or not paths_given:
        # The tests that use no leg (the cluster engine on PostgreSQL alone, the HTTP client) in a process
        # of their own, with those marked `once` (the cluster soak) on the first leg: the first leg's
        # process would end last otherwise.
        for k, leg in enumerate(legs + [LEGLESS] if legs else []):
            name = "url" if leg.startswith("url=") else leg
            low = PORTS_FROM + k * PORTS_PER_LEG
            argv = pytest + (integration_paths or ["tests/integration"]) + ["--legs", legs[0] if leg == LEGLESS
                                                                             else leg] + options
            env = {"ADVANCED_REST_PORTS": f"{low}-{low + PORTS_PER_LEG - 1}", "ADVANCED_REST_FIRST_LEG": legs[0],
                   "ADVANCED_REST_LEGLESS": "only" if leg == LEGLESS else "elsewhere"}
            runs.append((name, Run(name, argv, env)))
    began = time.monotonic()
    print("==> side by side: " + ", ".join(f"{name} (log {os.path.relpath(run.log_path, REPO)})"
                                         for name, run in runs), flush=True)
    last_beat = began
    try:
        while [run.poll() for _, run in runs].count(None):  # every run polled: each one's end is timed
            time.sleep(1)
            for name, run in runs:
                if run.ended is not None and not getattr(run, "announced", False):
                    run.announced = True
                    print(f"==> {name} finished in {_duration(run.seconds)} (exit {run.process.returncode})",
                          flush=True)
            if time.monotonic() - last_beat >= HEARTBEAT:
                last_beat = time.monotonic()
                busy = [f"{name} {run.progress()}" for name, run in runs if run.ended is None]
                print(f"... {_duration(last_beat - began)}: " + ", ".join(busy), flush=True)
    except KeyboardInterrupt:
        for _, run in runs:
            if run.process.poll() is None:
                run.process.terminate()
        for _, run in runs:
            run.process.wait()
        raise

    for name, run in runs:
        print(f"\n{'=' * 30} {name}: {os.path.relpath(run.log_path, REPO)} {'=' * 30}")
        print(_report_tail(run.log()), end="")
    print(f"\n{'=' * 30} legs side by side: {_duration(time.monotonic() - began)} {'=' * 30}")
    failed = False
    for name, run in runs:
        counts = run.counts()
        count_text = ("%d passed, %d failed, %d skipped" % counts if counts
                      else f"no report (pytest exit {run.process.returncode})")
        if name == "unit":
            what = "unit tests"
        elif name == LEGLESS:
            what = f"integration tests that use no leg, and those run once, on {legs[0]}"
        else:
            what = run.leg_status(name)
        verdict = "FAILED" if run.failed() else "ok"
        failed |= run.failed()
        print(f"{name:9} {verdict:6} {_duration(run.seconds):>7}  {count_text}  [{what}]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
