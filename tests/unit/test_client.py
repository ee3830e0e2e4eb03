"""The client (client/advanced_rest_client) without a server: a fake session and a fake clock."""
import io
import json
import os
import tomllib

import pytest
import requests

import advanced_rest_client
from advanced_rest_client import Client, JobTimeout, monitor
from advanced_rest_client.__main__ import main, parser

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
URL = "http://orthanc:8042"


class Clock:
    """time.monotonic and time.sleep of the client module: time passes only when told."""

    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Answer:
    def __init__(self, status, body):
        self.status_code, self._body = status, body
        self.content = json.dumps(body).encode() if body is not None else b""

    def raise_for_status(self):
        if self.status_code >= 400:
            raise requests.HTTPError("%d Client Error" % self.status_code, response=self)

    def json(self):
        return self._body


class Session:
    """Answers each request from `route(method, path, kwargs)` -> (status, body, seconds the server held it)."""

    def __init__(self, clock, route):
        self.clock, self.route, self.calls, self.auth = clock, route, [], None

    def request(self, method, url, **kwargs):
        assert url.startswith(URL)
        path = url[len(URL):]
        self.calls.append((method, path, kwargs))
        status, body, held = self.route(method, path, kwargs)
        self.clock.now += held
        return Answer(status, body)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(advanced_rest_client, "time", clock)
    return clock


def _job(state, progress=0, job_id="j1"):
    return {"ID": job_id, "State": state, "Progress": progress, "Type": "CreateDicom", "ErrorCode": 0,
            "ErrorDescription": "Success", "ErrorDetails": ""}


def _waits(answers):
    """A route for /jobs/j1/wait answering `answers` (state, seconds held) in turn."""
    answers = iter(answers)

    def route(method, path, kwargs):
        assert (method, path) == ("GET", "/advanced-rest/jobs/j1/wait")
        state, held = next(answers)
        return 200, _job(state), held
    return route


@pytest.mark.parametrize("argv, expected", [
    (["monitor", "J"], dict(command="monitor", job_id="J", timeout=None, url="http://localhost:8042", user=None,
                            password=None, root="/advanced-rest")),
    (["--url", URL, "--user", "u", "--password", "p", "--root", "/x", "monitor", "J", "--timeout", "2.5"],
     dict(command="monitor", job_id="J", timeout=2.5, url=URL, user="u", password="p", root="/x")),
    (["wait", "J"], dict(command="wait", job_id="J", timeout=None)),
    (["wait", "J", "--timeout", "10"], dict(command="wait", job_id="J", timeout=10.0)),
    (["jobs"], dict(command="jobs", state=[], type=[], expand=False)),
    (["jobs", "--state", "Running,Pending", "--type", "CreateDicom", "--expand"],
     dict(command="jobs", state=["Running", "Pending"], type=["CreateDicom"], expand=True)),
    (["jobs", "--state", " Running , ,Pending,"], dict(state=["Running", "Pending"])),
], ids=["monitor-defaults", "monitor-every-option", "wait", "wait-timeout", "jobs-defaults", "jobs-filters",
        "jobs-blanks-dropped"])
def test_the_command_line_is_parsed(argv, expected):
    args = vars(parser().parse_args(argv))
    assert {name: args[name] for name in expected} == expected


@pytest.mark.parametrize("argv", [
    [], ["monitor"], ["wait"], ["wait", "J", "--timeout", "soon"], ["jobs", "--expand", "yes"], ["delete", "J"],
], ids=["no-command", "monitor-without-job", "wait-without-job", "timeout-not-a-number", "expand-takes-no-value",
        "unknown-command"])
def test_a_wrong_command_line_exits_with_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        parser().parse_args(argv)
    assert stop.value.code == 2
    assert "usage: advanced-rest" in capsys.readouterr().err


def test_the_client_sends_credentials_and_uses_the_root(clock):
    session = Session(clock, lambda method, path, kwargs: (200, ["a"], 0))
    client = Client(URL + "/", "user", None, "/root", session=session)
    assert session.auth == ("user", "")
    assert client.jobs(["Running", "Pending"], ["CreateDicom"], expand=True) == ["a"]
    assert session.calls == [("GET", "/root/jobs", {"params": {"state": "Running,Pending", "type": "CreateDicom",
                                                                "expand": ""}})]


def test_a_wait_held_by_the_server_is_asked_again_at_once(clock):
    session = Session(clock, _waits([("Running", 30.0), ("Running", 30.0), ("Success", 5.0)]))
    job = Client(URL, session=session).wait_for_job("j1")
    assert job["State"] == "Success"
    assert clock.sleeps == []
    assert [call[2] for call in session.calls] == [{"params": {"timeout": 30.0}, "timeout": 60.0}] * 3


def test_a_wait_answered_at_once_backs_off_before_asking_again(clock):
    # The server answers at once when its long-polls are all taken (LongPollShare): no loop of requests.
    session = Session(clock, _waits([("Running", 0.0), ("Pending", 0.2), ("Success", 0.0)]))
    assert Client(URL, session=session).wait_for_job("j1")["State"] == "Success"
    assert clock.sleeps == [1.0, 1.0]


def test_the_back_off_never_passes_the_deadline(clock):
    session = Session(clock, _waits([("Running", 0.0)] * 5))
    with pytest.raises(JobTimeout) as timeout:
        Client(URL, session=session).wait_for_job("j1", timeout=2.5)
    assert timeout.value.job["State"] == "Running"
    assert clock.sleeps == [1.0, 1.0, 0.5]
    # Each wait asks the server for no more than what is left.
    assert [call[2]["params"]["timeout"] for call in session.calls] == [2.5, 1.5, 0.5, 0.0]


def test_a_wait_shorter_than_the_time_left_is_chunked(clock):
    session = Session(clock, _waits([("Running", 30.0), ("Running", 10.0)]))
    with pytest.raises(JobTimeout):
        Client(URL, session=session).wait_for_job("j1", timeout=40)
    assert [call[2]["params"]["timeout"] for call in session.calls] == [30.0, 10.0]
    assert clock.sleeps == []


def _monitored(changes):
    """A route for monitor: job j1 runs through `changes` (each: the changes answered, state after, held)."""
    steps = iter(changes)
    state = {"job": _job("Running", 10)}

    def route(method, path, kwargs):
        if path == "/advanced-rest/jobs/j1":
            return 200, state["job"], 0
        assert path == "/advanced-rest/jobs/changes"
        if kwargs["params"] == {"since": 0, "timeout": 0.0}:
            return 200, {"Changes": [], "Last": 7, "Done": False}, 0
        answered, job, held = next(steps)
        state["job"] = job
        return 200, {"Changes": answered, "Last": kwargs["params"]["since"] + len(answered), "Done": False}, held
    return route


def test_monitor_shows_progress_until_the_job_ends(clock):
    session = Session(clock, _monitored([
        ([{"ID": "other"}], _job("Running", 50), 0.1),  # another job moved: j1 is not read again
        ([{"ID": "j1"}], _job("Running", 60), 0.1),
        ([{"ID": "j1"}], _job("Success", 100), 0.1),
    ]))
    out = io.StringIO()
    job = monitor(Client(URL, session=session), "j1", out=out)
    assert job["State"] == "Success"
    bars = out.getvalue().split("\r")
    assert [bar.split("%")[0][-3:] for bar in bars] == [" 10", " 60", "100"]
    assert bars[-1].endswith("Success  CreateDicom j1\n")
    since = [call[2]["params"]["since"] for call in session.calls if call[1].endswith("/changes")]
    assert since == [0, 7, 8, 9]
    assert clock.sleeps == []


def test_monitor_backs_off_when_the_changes_are_answered_at_once(clock):
    failed = dict(_job("Failure", 40), ErrorCode=37, ErrorDescription="Canceled job", ErrorDetails="")
    session = Session(clock, _monitored([([], _job("Running", 10), 0.0), ([], failed, 5.0)]))
    out = io.StringIO()
    assert monitor(Client(URL, session=session), "j1", out=out)["State"] == "Failure"
    assert clock.sleeps == [1.0]  # once, after the answer that came at once; none after the held one
    assert out.getvalue().endswith("\n37: Canceled job \n")


def test_monitor_gives_up_at_its_timeout(clock):
    session = Session(clock, _monitored([([], _job("Running", 10), 5.0)] * 3))
    with pytest.raises(JobTimeout):
        monitor(Client(URL, session=session), "j1", timeout=7, out=io.StringIO())
    waits = [call[2]["params"]["timeout"] for call in session.calls if call[1].endswith("/changes")]
    assert waits == [0.0, 5.0, 2.0]


def _jobs_route(method, path, kwargs):
    return 200, ["j1", "j2"], 0


@pytest.mark.parametrize("argv, route, status, printed", [
    (["jobs"], _jobs_route, 0, ["j1", "j2"]),
    (["wait", "j1"], _waits([("Running", 30.0), ("Success", 1.0)]), 0, _job("Success")),
    (["wait", "j1"], _waits([("Failure", 1.0)]), 1, _job("Failure")),
    (["wait", "j1", "--timeout", "10"], _waits([("Running", 10.0)]), 2, None),
    (["wait", "j1"], lambda method, path, kwargs: (404, {"HttpStatus": 404}, 0), 3, None),
], ids=["jobs-prints-the-list", "wait-success", "wait-failure", "wait-timeout", "wait-unknown-job"])
def test_the_command_prints_json_and_exits_with_the_outcome(clock, capsys, argv, route, status, printed):
    assert main(["--url", URL] + argv, session=Session(clock, route)) == status
    out, err = capsys.readouterr()
    if printed is None:
        assert out == "" and err
    else:
        assert json.loads(out) == printed


def test_the_command_sends_the_filters(clock, capsys):
    session = Session(clock, _jobs_route)
    assert main(["--url", URL, "jobs", "--state", "Running,Pending", "--type", "CreateDicom"], session=session) == 0
    assert session.calls == [("GET", "/advanced-rest/jobs", {"params": {"state": "Running,Pending",
                                                                         "type": "CreateDicom"}})]


def test_an_unreachable_server_exits_with_3(capsys):
    # Port 9 on the loopback (discard): nothing listens there on these machines, the connection is refused.
    assert main(["--url", "http://127.0.0.1:9", "jobs"]) == 3
    assert "127.0.0.1:9" in capsys.readouterr().err


def _project(path):
    with open(os.path.join(REPO, path), "rb") as f:
        return tomllib.load(f)


def test_the_root_project_installs_the_same_client():
    # `pip install .` and `pip install ./client` must give one package: the two files may not drift.
    root, client = _project("pyproject.toml"), _project("client/pyproject.toml")
    assert root["project"] == client["project"]
    assert root["build-system"] == client["build-system"]
    assert root["tool"]["setuptools"]["package-dir"] == {"": "client"}
    assert {k: v for k, v in root["tool"]["setuptools"].items() if k != "package-dir"} == client["tool"]["setuptools"]
    assert client["project"]["dependencies"] == ["requests>=2.28"]
    assert client["project"]["scripts"] == {"advanced-rest": "advanced_rest_client.__main__:main"}
