"""A history checker for the cluster (issue 14): a seeded workload and a nemesis, every operation
recorded, then checks of the history against what the cluster promises (README, "Several Orthanc
on one PostgreSQL").

    run(replicas, seconds, seed, lease, postgres=None, clients=3) -> Result

Clients (threads, each with its own HTTP session) send random operations to random replicas:
asynchronous create-dicom submissions (one instance or a small series, each job with a PatientName,
PatientID and Study/SeriesInstanceUID of its own), cancel / pause / resume / resubmit / delete of
recent jobs, `GET /jobs/{id}` and reads of the change feed (`{Root}/jobs/changes?since=N&timeout=S`).
A follower thread reads the whole feed, without a gap, from whichever replica is up. A nemesis
meanwhile, one fault at a time: kills a replica (SIGKILL, `docker kill`) and starts it again;
freezes one (SIGSTOP; in a container, to its PID 1: Orthanc) past its lease then thaws it; stops PostgreSQL for a few
seconds (when given its PostgresServer). Every operation is an `Op` (client, kind, replica, job,
start and end times, status, answer).

After the faults (every replica alive and thawed, PostgreSQL up), the settle phase resumes the jobs
left Paused and waits for every job to end; then `check` lists the anomalies, each with the
operations involved:

  order       the feed's changes of a job, in Seq order, have growing Versions and each state move
              is one of the transition table (jobs/model.py); what each client read of a job with
              GET /jobs/{id}, in its order, is a subsequence of the job's feed (nobody sees a job
              go back, nobody sees a state the log does not have)
  cancel      a cancel answered 200 ends in Failure with ErrorCode 37, unless the job had ended
              before the cancel was answered (or was resubmitted after it)
  end         every accepted job ends (Success or Failure) within the settle bound
  success     a Success job's instances exist once: /tools/find by its PatientName gives as many
              instances as it had images (their UIDs distinct: Orthanc's IDs come from them), in one
              series, the one of its Content, and its Content exists
  failure     a Failure job left no instance
  feed        Seq consecutive from every replica, the same change for a Seq on every replica, and
              the last change of each job equals its row (GET /jobs/{id}: State, Progress; a
              deleted job: "Deleted" and 404)
  owner       no job read Running with a dead or frozen replica as its Replica longer than 4/3 of
              the lease (plus a slack) after that replica went down
  answer      actions decided against the row: a resume (resubmit) answered 200 while the feed says
              the job could not be Paused (Failure) then, or 400 while it surely was; a cancel or
              pause answered 400 on a job not deleted
  error       an answer 500, or no answer within REQUEST_TIMEOUT from a replica that was up and
              not frozen with PostgreSQL up
"""
import base64
import collections
import dataclasses
import importlib.util
import io
import json
import os
import random
import signal
import threading
import time

import requests
from PIL import Image

from servers import REPO, new_session

ROOT = "/advanced-rest"
REQUEST_TIMEOUT = 30.0  # seconds: no request of the workload waits longer (long polls are shorter)
OWNER_SLACK = 5.0  # seconds over 4/3 of the lease before a job Running on a dead replica is an anomaly
SETTLE_TIMEOUT = 240.0  # seconds after the faults for every job to end
FINISHED = ("Success", "Failure")
DELETED = "Deleted"


def _model():
    """jobs/model.py of the plugin, loaded alone (its package needs Orthanc)."""
    path = os.path.join(REPO, "plugin", "advanced_rest", "jobs", "model.py")
    spec = importlib.util.spec_from_file_location("advanced_rest_jobs_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


model = _model()


def legal_moves():
    """{(state, state)}: the visible moves of the transition table (an undo ends in Failure)."""
    moves = set()
    for (event, state), outcome in model.TRANSITIONS.items():
        if outcome in model.STATES:
            moves.add((state, outcome))
        elif outcome == model.Outcome.UNDO:
            moves.add((state, model.State.FAILURE))
    moves |= {(state, DELETED) for state in model.FINISHED}  # DELETE /jobs/{id}: finished jobs only
    return moves


LEGAL = legal_moves()


def _png(side, seed):
    image = Image.linear_gradient("L").resize((side, side)).point(lambda v: (v + seed) % 256)
    out = io.BytesIO()
    image.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


SMALL_PNG = _png(32, 0)
SERIES_PNG = _png(1024, 7)  # a step of some tens of ms: series run long enough to be acted on


@dataclasses.dataclass
class Op:
    n: int
    client: str
    kind: str  # submit, cancel, pause, resume, resubmit, delete, read, feed, final
    replica: str
    job: str = None
    start: float = 0.0
    end: float = 0.0
    status: object = None  # HTTP status, or the exception's name
    answer: object = None  # JSON answer (read: the job; feed: its changes), else a text excerpt

    def __str__(self):
        answer = self.answer
        if self.kind == "read" and isinstance(answer, dict):
            answer = {k: answer.get(k) for k in ("State", "Progress", "ErrorCode", "Replica")}
        elif self.kind == "feed" and isinstance(answer, dict):
            answer = "%d changes, Last %s" % (len(answer.get("Changes", [])), answer.get("Last"))
        text = json.dumps(answer) if not isinstance(answer, str) else answer
        return "#%d %s %s %s@%s [%.2f-%.2f] %s %s" % (self.n, self.client, self.kind, self.job or "", self.replica,
                                                      self.start, self.end, self.status, text[:160])


@dataclasses.dataclass
class Fault:
    kind: str  # kill, freeze, postgres
    target: str  # a replica's identifier, or "postgres"
    start: float
    end: float = None
    note: str = ""

    def __str__(self):
        return "%s %s [%.2f-%s]%s" % (self.kind, self.target, self.start,
                                      "%.2f" % self.end if self.end is not None else "...", self.note)


@dataclasses.dataclass
class Job:
    id: str
    name: str  # PatientName, its own
    images: int
    submitted: Op


@dataclasses.dataclass
class Change:
    seq: int
    change: dict
    lower: float  # committed after this time (start of a poll that did not see it yet)
    upper: float  # committed before this time (end of the poll that brought it)


class History:
    """Operations, faults, jobs and the followed feed, shared by the threads."""

    def __init__(self, t0):
        self.t0 = t0
        self.t0_epoch = time.time() - (time.monotonic() - t0)  # t0 on the servers' clock (CompletionTime)
        self.lock = threading.Lock()
        self.ops = []
        self.faults = []
        self.jobs = {}  # id -> Job
        self.order = []  # job ids in submission order
        self.feed = []  # Change, Seq 1.. consecutive (from `first`)
        self.feed_notes = []  # (text, ops) of feed anomalies seen while following

    def now(self):
        return time.monotonic() - self.t0

    def add(self, op):
        with self.lock:
            op.n = len(self.ops)
            self.ops.append(op)
        return op

    def recent_jobs(self, k):
        with self.lock:
            return list(self.order[-k:])


class Replicas:
    """The replicas and which of them are down (killed) or frozen, for the clients and the checks."""

    def __init__(self, servers):
        self.servers = list(servers)
        self.down = set()  # identifiers
        self.frozen = set()
        self.postgres_down = False
        self.lock = threading.Lock()

    def name(self, server):
        return getattr(server, "identifier", server.name)

    def healthy(self):
        with self.lock:
            return [s for s in self.servers if self.name(s) not in self.down | self.frozen] or self.servers

    def state(self, server):
        """(up and not frozen, PostgreSQL up) now."""
        with self.lock:
            name = self.name(server)
            return name not in self.down and name not in self.frozen, not self.postgres_down


# -- requests -----------------------------------------------------------------------------------

def call(history, replicas, session, client, kind, server, method, path, job=None, body=None, params=None,
         timeout=REQUEST_TIMEOUT):
    """One request, recorded as an Op (with whether its replica and PostgreSQL were healthy throughout)."""
    op = Op(0, client, kind, replicas.name(server), job)
    healthy_before = replicas.state(server)
    op.start = history.now()
    try:
        answer = session.request(method, server.url + path, data=json.dumps(body) if body is not None else None,
                                 params=params, timeout=timeout)
        op.status = answer.status_code
        try:
            op.answer = answer.json()
        except ValueError:
            op.answer = answer.text[:300]
    except requests.RequestException as error:
        op.status = type(error).__name__
        op.answer = str(error)[:300]
    op.end = history.now()
    op.healthy = healthy_before == (True, True) and replicas.state(server) == (True, True)
    return history.add(op)


class Client(threading.Thread):
    """Random operations until `stop` is set."""

    WEIGHTS = {"submit": 22, "cancel": 9, "pause": 10, "resume": 12, "resubmit": 6, "delete": 3, "read": 30,
               "feed": 8}

    def __init__(self, k, history, replicas, seed, stop, prefix):
        super().__init__(name=f"history-client-{k}", daemon=True)
        self.label = f"c{k}"
        self.history, self.replicas, self.stop = history, replicas, stop
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.session = _session(replicas.servers)
        self.count = 0
        self.error = None

    def run(self):
        kinds, weights = zip(*self.WEIGHTS.items())
        try:
            while not self.stop.is_set():
                kind = self.rng.choices(kinds, weights)[0]
                server = self.rng.choice(self.replicas.healthy() if self.rng.random() < 0.8 else
                                         self.replicas.servers)
                getattr(self, "op_" + (kind if kind in ("submit", "read", "feed", "delete") else "action"))(kind, server)
                time.sleep(self.rng.uniform(0.0, 0.15))
        except Exception as error:  # a checker bug: reported by run()
            self.error = error
            raise

    def _job(self):
        recent = self.history.recent_jobs(12)
        return self.rng.choice(recent) if recent else None

    def op_submit(self, _kind, server):
        self.count += 1
        name = "History^%s-%s-%d" % (self.prefix, self.label, self.count)
        series = self.rng.random() < 0.6
        images = self.rng.randint(2, 12) if series else 1
        body = {"Tags": {"PatientName": name, "PatientID": name.split("^")[1]},
                "Content": [SERIES_PNG] * images if series else SMALL_PNG, "Asynchronous": True,
                "Priority": self.rng.randint(0, 3)}
        op = call(self.history, self.replicas, self.session, self.label, "submit", server, "POST",
                  "/tools/create-dicom", body=body)
        op.images = images
        op.name = name
        if op.status == 200 and isinstance(op.answer, dict) and op.answer.get("ID"):
            op.job = op.answer["ID"]
            with self.history.lock:
                self.history.jobs[op.job] = Job(op.job, name, images, op)
                self.history.order.append(op.job)

    def op_action(self, kind, server):
        job = self._job()
        if job is not None:
            call(self.history, self.replicas, self.session, self.label, kind, server, "POST",
                 "/jobs/%s/%s" % (job, kind), job=job, body={})

    def op_delete(self, kind, server):
        job = self._job()
        if job is not None:
            call(self.history, self.replicas, self.session, self.label, kind, server, "DELETE", "/jobs/%s" % job,
                 job=job)

    def op_read(self, kind, server):
        job = self._job()
        if job is not None:
            call(self.history, self.replicas, self.session, self.label, kind, server, "GET", "/jobs/%s" % job,
                 job=job)

    def op_feed(self, kind, server):
        with self.history.lock:
            last = self.history.feed[-1].seq if self.history.feed else 0
        since = max(0, last - self.rng.randint(0, 40))
        call(self.history, self.replicas, self.session, self.label, kind, server, "GET", ROOT + "/jobs/changes",
             params={"since": since, "timeout": self.rng.choice([0, 1, 2])})


class Follower(threading.Thread):
    """Reads the cluster's feed from Seq 1 on, from any replica up, and notes gaps as it goes."""

    def __init__(self, history, replicas, stop):
        super().__init__(name="history-feed", daemon=True)
        self.history, self.replicas, self.stop = history, replicas, stop
        self.session = _session(replicas.servers)
        self.since = 0
        self.lower = 0.0  # start of the last poll that answered Done up to self.since
        self.rng = random.Random(1)
        self.error = None

    def poll(self, server, timeout):
        start = self.history.now()
        try:
            answer = self.session.get(server.url + ROOT + "/jobs/changes",
                                      params={"since": self.since, "timeout": timeout}, timeout=timeout + 15)
        except requests.RequestException:
            return False
        end = self.history.now()
        if answer.status_code != 200:
            return False
        body = answer.json()
        changes = body.get("Changes", [])
        with self.history.lock:
            expected = self.since + 1
            for change in changes:
                if change.get("Seq") != expected:
                    self.history.feed_notes.append(
                        ("feed from %s after since=%d: Seq %s where %d was due (a gap or a repeat)"
                         % (self.replicas.name(server), self.since, change.get("Seq"), expected), []))
                    expected = change.get("Seq", expected)
                self.history.feed.append(Change(change.get("Seq"), change, self.lower, end))
                expected += 1
            if not changes and body.get("Last", self.since) < self.since:
                self.history.feed_notes.append(("feed from %s: since=%d answered Last %s (numbers went back)"
                                                % (self.replicas.name(server), self.since, body.get("Last")), []))
        if changes:
            self.since = changes[-1]["Seq"]
        if body.get("Done", True):
            self.lower = start
        return True

    def run(self):
        try:
            while not self.stop.is_set():
                if not self.poll(self.rng.choice(self.replicas.healthy()), 2):
                    time.sleep(0.3)
        except Exception as error:
            self.error = error
            raise

    def catch_up(self, servers, rounds=3):
        """Read to the end (after the faults): until a poll answers nothing new, `rounds` times."""
        quiet = 0
        deadline = time.monotonic() + 60
        while quiet < rounds and time.monotonic() < deadline:
            before = self.since
            if self.poll(self.rng.choice(servers), 1) and self.since == before:
                quiet += 1


# -- the nemesis ----------------------------------------------------------------------------------

def _pid(server):
    return server.process.pid if getattr(server, "process", None) is not None else None


def _session(servers):
    """The tests' session (servers.new_session) with the replicas' credentials, if they want some."""
    return new_session(getattr(servers[0].session, "auth", None))


def freeze(server):
    """SIGSTOP to Orthanc (in a container: its PID 1, which a SIGKILL can still end, unlike `docker pause`)."""
    if getattr(server, "container", None) is not None:
        server.container.kill(signal="SIGSTOP")
    else:
        os.kill(_pid(server), signal.SIGSTOP)


def thaw(server):
    if not server.running():
        return
    if getattr(server, "container", None) is not None:
        server.container.kill(signal="SIGCONT")
    else:
        os.kill(_pid(server), signal.SIGCONT)


class Nemesis(threading.Thread):
    """One fault at a time until `stop`; every replica alive and thawed, PostgreSQL up, when it returns."""

    def __init__(self, history, replicas, seed, stop, lease, postgres=None, kinds=("kill", "freeze", "postgres")):
        super().__init__(name="history-nemesis", daemon=True)
        self.history, self.replicas, self.stop, self.lease = history, replicas, stop, lease
        self.rng = random.Random(seed)
        self.postgres = postgres
        self.kinds = [k for k in kinds if k != "postgres" or postgres is not None]
        self.error = None

    def _fault(self, kind, target):
        fault = Fault(kind, target, self.history.now())
        with self.history.lock:
            self.history.faults.append(fault)
        return fault

    def run(self):
        try:
            self.stop.wait(self.rng.uniform(3, 6))
            cycle = []
            while not self.stop.is_set():
                if not cycle:  # every kind once, in a random order, then again
                    cycle = list(self.kinds)
                    self.rng.shuffle(cycle)
                getattr(self, "fault_" + cycle.pop())()
                self.stop.wait(self.rng.uniform(3, 8))
        except Exception as error:
            self.error = error
            raise

    def fault_kill(self):
        server = self.rng.choice(self.replicas.servers)
        name = self.replicas.name(server)
        with self.replicas.lock:
            self.replicas.down.add(name)
        fault = self._fault("kill", name)
        server.kill()
        time.sleep(self.rng.uniform(1, 4))
        self._start(server, fault)

    def _start(self, server, fault):
        for attempt in range(3):
            try:
                server.start()
                break
            except Exception as error:  # StartError: noted; tried again (PostgreSQL up: it should start)
                fault.note += " start %d failed: %s" % (attempt + 1, str(error).splitlines()[0][:200])
        with self.replicas.lock:
            self.replicas.down.discard(self.replicas.name(server))
        fault.end = self.history.now()

    def fault_freeze(self):
        server = self.rng.choice(self.replicas.servers)
        name = self.replicas.name(server)
        with self.replicas.lock:
            self.replicas.frozen.add(name)
        fault = self._fault("freeze", name)
        freeze(server)
        try:
            time.sleep(self.lease * 4 / 3 + self.rng.uniform(1, 4))
        finally:
            thaw(server)
            with self.replicas.lock:
                self.replicas.frozen.discard(name)
            fault.end = self.history.now()

    def fault_postgres(self):
        with self.replicas.lock:
            self.replicas.postgres_down = True
        fault = self._fault("postgres", "postgres")
        self.postgres.stop(mode="fast")
        try:
            time.sleep(self.rng.uniform(2, 5))
        finally:
            self.postgres.start()
            with self.replicas.lock:
                self.replicas.postgres_down = False
            fault.end = self.history.now()


# -- the run --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Result:
    history: History
    anomalies: list  # (check, text, [Op])
    seconds: float
    settled: float  # seconds the settle phase took

    def summary(self):
        ops = self.history.ops
        kinds = collections.Counter(op.kind for op in ops)
        statuses = collections.Counter("%s %s" % (op.kind, op.status) for op in ops)
        faults = collections.Counter(f.kind for f in self.history.faults)
        ended = collections.Counter(self.final_states().values())
        lines = ["%d operations in %.0f s (%s), %d jobs (%s), %d feed changes; settled in %.0f s"
                 % (len(ops), self.seconds, ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
                    len(self.history.jobs), ", ".join("%s %d" % kv for kv in sorted(ended.items())),
                    len(self.history.feed), self.settled),
                 "answers: " + ", ".join("%s: %d" % kv for kv in sorted(statuses.items())),
                 "%d faults (%s): %s" % (len(self.history.faults), ", ".join("%s %d" % kv for kv in
                                                                            sorted(faults.items())),
                                         "; ".join(str(f) for f in self.history.faults)),
                 "%d anomalies" % len(self.anomalies)]
        firsts = {}
        for op in ops:
            if op.status not in (200, 404) and (op.kind, op.status) not in firsts:
                firsts[(op.kind, op.status)] = op
        lines[-1:-1] = ["first %s %s: %s" % (kind, status, op) for (kind, status), op in sorted(
            firsts.items(), key=lambda kv: str(kv[0]))]
        for check, text, involved in self.anomalies:
            lines.append("  [%s] %s" % (check, text))
            lines += ["      %s" % op for op in involved[:12]]
        return "\n".join(lines)

    def final_states(self):
        return {op.job: DELETED if op.status == 404 else op.answer.get("State") if op.status == 200
                else "answer %s" % op.status for op in self.history.ops if op.kind == "final"}


def run(servers, seconds, seed, lease, postgres=None, clients=3, kinds=("kill", "freeze", "postgres"), log=None):
    """The workload and the nemesis for `seconds`, the settle phase, the checks: a Result."""
    say = log or (lambda text: None)
    history = History(time.monotonic())
    replicas = Replicas(servers)
    stop, stop_feed = threading.Event(), threading.Event()
    prefix = "%d-%s" % (seed, os.urandom(3).hex())
    threads = [Client(k, history, replicas, seed * 1000 + k, stop, prefix) for k in range(clients)]
    follower = Follower(history, replicas, stop_feed)
    nemesis = Nemesis(history, replicas, seed, stop, lease, postgres, kinds)
    say("history: %d clients on %d replicas, %.0f s, seed %d, faults %s"
        % (clients, len(servers), seconds, seed, ",".join(nemesis.kinds)))
    follower.start()
    for thread in threads + [nemesis]:
        thread.start()
    try:
        stop.wait(seconds)
    finally:
        stop.set()
        nemesis.join()  # every replica alive and thawed, PostgreSQL up
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 10)
    workload = history.now()
    for thread in threads + [nemesis]:
        if thread.error is not None:
            raise RuntimeError("%s failed: %r" % (thread.name, thread.error)) from thread.error
    say("history: workload done (%d operations, %d faults); settling" % (len(history.ops), len(history.faults)))
    settle(history, replicas)
    settled = history.now() - workload
    stop_feed.set()
    follower.join(30)
    follower.catch_up(servers)
    final_reads(history, replicas)
    anomalies = check(history, lease, servers)
    return Result(history, anomalies, workload, settled)


def settle(history, replicas, timeout=SETTLE_TIMEOUT):
    """Resume what is Paused and wait until every job ended (or the bound passed)."""
    session = _session(replicas.servers)
    server = replicas.servers[0]
    open_jobs = list(history.jobs)
    deadline = time.monotonic() + timeout
    while open_jobs and time.monotonic() < deadline:
        still = []
        for i, job in enumerate(open_jobs):
            server = replicas.servers[i % len(replicas.servers)]
            op = call(history, replicas, session, "settle", "read", server, "GET", "/jobs/%s" % job, job=job)
            state = op.answer.get("State") if op.status == 200 and isinstance(op.answer, dict) else None
            if op.status == 404 or state in FINISHED:
                continue
            if state == "Paused":
                call(history, replicas, session, "settle", "resume", server, "POST", "/jobs/%s/resume" % job,
                     job=job, body={})
            still.append(job)
        open_jobs = still
        if open_jobs:
            time.sleep(1)


def final_reads(history, replicas):
    session = _session(replicas.servers)
    for i, job in enumerate(history.jobs):
        server = replicas.servers[i % len(replicas.servers)]
        call(history, replicas, session, "final", "final", server, "GET", "/jobs/%s" % job, job=job)


# -- the checks -----------------------------------------------------------------------------------

def check(history, lease, servers):
    """[(check, text, [Op])]: every anomaly of the history."""
    anomalies = []
    ops = history.ops
    by_job = collections.defaultdict(list)
    for op in ops:
        if op.job:
            by_job[op.job].append(op)
    feed = collections.defaultdict(list)  # job -> [Change] in Seq order
    for change in history.feed:
        feed[change.change.get("ID")].append(change)
    final = {op.job: op for op in ops if op.kind == "final"}
    session = _session(servers)
    server = servers[0]

    def add(kind, text, involved=()):
        anomalies.append((kind, text, sorted(involved, key=lambda o: o.start)))

    for text, involved in history.feed_notes:
        add("feed", text, involved)

    # feed: the same change for a Seq on every replica (client reads against the follower's)
    by_seq = {c.seq: c.change for c in history.feed}
    for op in ops:
        if op.kind == "feed" and op.status == 200 and isinstance(op.answer, dict):
            changes = op.answer.get("Changes", [])
            for first, second in zip(changes, changes[1:]):
                if second.get("Seq") != first.get("Seq") + 1:
                    add("feed", "Seq %s then %s in one answer" % (first.get("Seq"), second.get("Seq")), [op])
            for change in changes:
                known = by_seq.get(change.get("Seq"))
                if known is not None and known != change:
                    add("feed", "Seq %s is %s on %s but %s for the follower"
                        % (change.get("Seq"), change, op.replica, known), [op])

    for job_id, job in history.jobs.items():
        changes = [c for c in feed.get(job_id, [])]
        involved = by_job[job_id]
        states = [c.change.get("State") for c in changes]
        described = " -> ".join("%s/%s(v%s,#%d)" % (c.change.get("State"), c.change.get("Progress"),
                                                     c.change.get("Version"), c.seq) for c in changes)
        # order: versions grow, every move legal
        for a, b in zip(changes, changes[1:]):
            va, vb = a.change.get("Version"), b.change.get("Version")
            if va is None or vb is None or vb <= va:
                add("order", "job %s: Version %s then %s in the feed (Seq %d, %d)" % (job_id, va, vb, a.seq, b.seq),
                    involved)
            sa, sb = a.change.get("State"), b.change.get("State")
            if sa != sb and (sa, sb) not in LEGAL:
                add("order", "job %s: %s -> %s is no move of the table (Seq %d -> %d); feed: %s"
                    % (job_id, sa, sb, a.seq, b.seq, described), involved)
        if changes and states[0] != "Pending":
            add("order", "job %s: its first change is %s" % (job_id, states[0]), involved)
        # order: each client's reads are a subsequence of the feed
        reads = collections.defaultdict(list)
        for op in involved:
            if op.kind in ("read", "final") and op.status == 200 and isinstance(op.answer, dict):
                reads[op.client].append(op)
        for client, seen in reads.items():
            position = 0
            for op in sorted(seen, key=lambda o: o.start):
                value = (op.answer.get("State"), op.answer.get("Progress"))
                found = next((i for i in range(position, len(changes))
                              if (changes[i].change.get("State"), changes[i].change.get("Progress")) == value), None)
                if found is None:
                    earlier = next((i for i in range(0, position)
                                    if (changes[i].change.get("State"), changes[i].change.get("Progress")) == value),
                                   None)
                    why = "a state it had left (went back)" if earlier is not None else "a state the feed never had"
                    add("order", "job %s: client %s read %s/%s, %s; feed: %s"
                        % (job_id, client, value[0], value[1], why, described),
                        [o for o in seen if o.start <= op.start][-4:] + [o for o in involved if o.kind != "read"])
                else:
                    position = found

        # end, feed vs row
        last_read = final.get(job_id)
        deleted = [op for op in involved if op.kind == "delete" and op.status == 200]
        if last_read is None or last_read.status not in (200, 404):
            add("end", "job %s: no final answer" % job_id, [last_read] if last_read else [])
            continue
        row = last_read.answer if last_read.status == 200 else None
        if row is None and not deleted:
            add("end", "job %s: 404 although never deleted" % job_id, involved)
            continue
        if row is not None and row.get("State") not in FINISHED:
            add("end", "job %s still %s/%s (Replica %s) %.0f s after the faults ended"
                % (job_id, row.get("State"), row.get("Progress"), row.get("Replica"), SETTLE_TIMEOUT), involved)
        last = changes[-1].change if changes else None
        if row is not None:
            if last is None or (last.get("State"), last.get("Progress")) != (row.get("State"), row.get("Progress")):
                add("feed", "job %s: row %s/%s but last change %s" % (
                    job_id, row.get("State"), row.get("Progress"), last), [last_read])
        elif last is None or last.get("State") != DELETED:
            add("feed", "job %s: deleted (404) but last change %s" % (job_id, last), deleted)
        if row is not None:
            end_state = row.get("State")
        else:  # deleted: what it was when deleted
            end_state = next((s for s in reversed(states) if s in FINISHED), None)

        # cancel
        for cancel in (op for op in involved if op.kind == "cancel" and op.status == 200):
            if any(op.kind == "resubmit" and op.status == 200 and op.end > cancel.start for op in involved):
                continue  # its Failure may have been resubmitted: the next run owes it nothing
            if row is None:
                continue
            if (row.get("State"), row.get("ErrorCode")) == ("Failure", 37):
                continue
            completed = _epoch(row.get("CompletionTime"))
            answered = history.t0_epoch + cancel.end
            if row.get("State") in FINISHED and completed is not None and answered is not None \
                    and completed <= answered + 0.05:
                continue  # ended before the cancel was answered: nothing to do
            add("cancel", "job %s: cancel answered 200 (op #%d) but it ended %s ErrorCode %s at %s"
                % (job_id, cancel.n, row.get("State"), row.get("ErrorCode"), row.get("CompletionTime")),
                involved)

        # instances
        if end_state in FINISHED:
            found = _find(session, server, job.name)
            if end_state == "Success":
                if found is None or len(found) != job.images:
                    add("success", "job %s (%s) Success with %d image(s): %s instance(s) found by PatientName"
                        % (job_id, job.name, job.images, None if found is None else len(found)), involved)
                else:
                    series = _find(session, server, job.name, "Series") or []
                    content = (row or {}).get("Content", {})
                    own = content.get("ID") if str(content.get("Path", "")).startswith("/series/") \
                        else content.get("ParentSeries")
                    if row is not None and series != [own]:
                        add("success", "job %s: series %s found by PatientName, its Content says %s"
                            % (job_id, series, own), [last_read])
                    if row is not None and server_get(session, server, row.get("Content", {}).get("Path")) != 200:
                        add("success", "job %s: its Content %s is gone" % (job_id, row.get("Content")), [last_read])
            elif found:
                add("failure", "job %s (%s) ended Failure (ErrorCode %s) with %d instance(s) left"
                    % (job_id, job.name, row.get("ErrorCode") if row else "?", len(found)), involved)

        # answers decided against the row
        for op in involved:
            if op.kind in ("cancel", "pause") and op.status == 400 and op.client != "settle":
                if not any(d.start < op.end for d in deleted):
                    add("answer", "job %s: %s answered 400 while the job existed" % (job_id, op.kind), [op])
            if op.kind in ("resume", "resubmit") and op.status in (200, 400) \
                    and not any(d.start < op.end for d in deleted) \
                    and not any(c.kind == "cancel" and c.status == 200 and c.start < op.end for c in involved):
                # (a cancelled job is undone first: actions wait or are refused meanwhile)
                need = "Paused" if op.kind == "resume" else "Failure"
                surely, possibly = _held(changes, need, op.start, op.end)
                if op.status == 400 and surely:
                    add("answer", "job %s: %s answered 400 while the row was %s throughout; feed: %s"
                        % (job_id, op.kind, need, described), [op])
                if op.status == 200 and not possibly:
                    add("answer", "job %s: %s answered 200 while the row could not be %s; feed: %s"
                        % (job_id, op.kind, need, described), [op])

        # owner
        for op in involved:
            if op.kind == "read" and op.status == 200 and isinstance(op.answer, dict) \
                    and op.answer.get("State") == "Running":
                for fault in history.faults:
                    if fault.kind in ("kill", "freeze") and fault.target == op.answer.get("Replica") \
                            and op.start > fault.start + lease * 4 / 3 + OWNER_SLACK \
                            and (fault.end is None or op.end < fault.end):
                        add("owner", "job %s read Running on %s %.1f s after %s" % (
                            job_id, fault.target, op.start - fault.start, fault), [op])

    # error answers
    for op in ops:
        if op.status == 500 or (isinstance(op.status, str) and "Timeout" in op.status and op.healthy):
            add("error", "%s %s answered %s%s" % (op.kind, op.job or "", op.status,
                                                  " (replica up, PostgreSQL up)" if op.healthy else ""), [op])
    return anomalies


def _held(changes, state, start, end):
    """(surely, possibly): whether the job was `state` throughout [start, end] / at some time of it,
    from the feed's changes and the times they were surely committed between."""
    surely = possibly = False
    for i, change in enumerate(changes):
        if change.change.get("State") != state:
            continue
        following = next((c for c in changes[i + 1:] if c.change.get("State") != state), None)
        entered_before, entered_after = change.upper, change.lower  # committed in (lower, upper)
        left_after = following.lower if following else float("inf")
        left_before = following.upper if following else float("inf")
        if entered_before < start and left_after > end:
            surely = True
        if entered_after < end and left_before > start:
            possibly = True
    return surely, possibly


def _epoch(stamp):
    """Orthanc's 20240506T070809.123456 (UTC) as seconds since the epoch, or None."""
    if not stamp:
        return None
    import datetime
    moment = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _find(session, server, name, level="Instance", expand=False):
    try:
        answer = session.post(server.url + "/tools/find", data=json.dumps(
            {"Level": level, "Query": {"PatientName": name}, "Expand": expand}), timeout=REQUEST_TIMEOUT)
    except requests.RequestException:
        return None
    return answer.json() if answer.status_code == 200 else None


def server_get(session, server, path):
    if not path:
        return None
    try:
        return session.get(server.url + path, timeout=REQUEST_TIMEOUT).status_code
    except requests.RequestException:
        return None
