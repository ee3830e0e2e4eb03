"""The cluster's jobs (jobs/cluster/) on a real PostgreSQL, two replicas in one process, no Orthanc:
claims, one view, actions from anywhere, takeover after a lease, identity. The same runners as the
one server's unit tests; the replicas on real Orthanc servers are in test_cluster.py."""
import threading
import time

import pytest

from advanced_rest.errors import AdvancedRestError, IllegalTransition
from advanced_rest.jobs.cluster import database as cluster_database, replica as cluster_
from advanced_rest.jobs.workers import Runner

RUNS = {}  # job id -> list of (replica, step) done, across replicas (the shared "storage")
RUNS_LOCK = threading.Lock()


class Counted(Runner):
    """`Steps` steps of `Sleep` s each, recorded in RUNS; re-created from its payload anywhere."""

    def __init__(self, payload, replica):
        self._payload, self._replica = payload, replica
        self._job_id = payload["ID"]
        self._seen = set()  # the steps this run did: its rollback removes their work, as create-dicom's

    def steps(self):
        return self._payload["Steps"]

    def step(self, index):
        time.sleep(self._payload.get("Sleep", 0.0))
        with RUNS_LOCK:
            RUNS.setdefault(self._job_id, []).append((self._replica, index))
            self._seen.add(index)

    def content(self):
        return {"Steps": self._payload["Steps"]}

    def payload(self):
        return self._payload

    def rollback(self):
        with RUNS_LOCK:  # a step's work is one instance whoever stored it (the same UIDs)
            RUNS[self._job_id] = [(replica, step) for replica, step in RUNS.get(self._job_id, [])
                                  if step not in self._seen]


class Replica:
    """One replica: its Cluster (and the Cluster's workers) on the test database."""

    def __init__(self, database, name, lease=30.0, workers=1, max_pending=None):
        import psycopg
        import psycopg_pool
        self.name, self.database = name, database
        options = dict(autocommit=True, application_name=cluster_database.application_name(name),
                       options=cluster_database.session_options(lease))
        self.pool = psycopg_pool.ConnectionPool(database.conninfo, kwargs=options, min_size=1, max_size=4,
                                                open=True)
        db = cluster_database.Database(
            self.pool, lambda app: psycopg.connect(database.conninfo, **dict(options, application_name=app)), name,
            lease)
        self.cluster = cluster_.Cluster(db, lambda job_type, payload, record: Counted(payload, name),
                                        concurrent_jobs=workers, history_size=50, max_pending=max_pending)

    def start(self):
        self.cluster.open()
        self.cluster.start()
        return self

    def submit(self, steps=3, sleep=0.0, priority=0):
        import uuid
        job_id = str(uuid.uuid4())
        return self.cluster.submit("Test", Counted({"ID": job_id, "Steps": steps, "Sleep": sleep}, self.name),
                                   priority, job_id=job_id)

    def stop(self):
        self.cluster.stop()
        self.pool.close()

    def die(self):
        """As kill -9 would: loops and workers stop, nothing handed back, connections dropped."""
        self.cluster._stop.set()
        self.cluster._workers._stopping.set()  # workers end after their step; the database is not told
        self.cluster.move = lambda claim, move, report=None: None
        for thread in self.cluster._threads:
            thread.join(5)
        self.cluster._db.stop()  # its LISTEN connection closes, as a killed process's would
        identity = self.cluster._identity.info.backend_pid
        self.cluster._identity.close()
        self.pool.close()
        # As a process killed: dead once PostgreSQL ended its sessions (it sees the socket close within
        # milliseconds), its identity lock with them.
        _until(lambda: not self.database.query("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (identity,)))


@pytest.fixture
def replicas(postgres_database):
    started = []

    def make(name, **kw):
        replica = Replica(postgres_database, name, **kw).start()
        started.append(replica)
        return replica

    yield make
    for replica in started:
        try:
            replica.stop()
        except Exception:
            pass


def _until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("never happened")


def test_a_job_submitted_on_one_replica_is_seen_and_awaited_on_the_other(replicas):
    a, b = replicas("a"), replicas("b")
    job_id = a.submit(steps=2)
    seen = b.cluster.get(job_id)
    assert seen is not None and seen["Type"] == "Test"
    job = b.cluster.wait(job_id, 10)
    assert job["State"] == "Success" and job["Replica"] in ("a", "b")
    assert job_id in a.cluster.ids() and job_id in b.cluster.ids()


def test_every_job_runs_exactly_once_across_replicas(replicas):
    a, b = replicas("a", workers=2), replicas("b", workers=2)
    ids = [(a if i % 2 else b).submit(steps=2, sleep=0.01) for i in range(20)]
    for job_id in ids:
        assert a.cluster.wait(job_id, 30)["State"] == "Success"
    for job_id in ids:
        runs = RUNS[job_id]
        assert sorted(step for _, step in runs) == [0, 1], runs  # each step once
        assert len({replica for replica, _ in runs}) == 1  # by one replica
    ran_by = {a.cluster.get(job_id)["Replica"] for job_id in ids}
    assert ran_by == {"a", "b"}, "both replicas took work"


def test_pending_jobs_are_claimed_by_priority_then_submission_order(replicas):
    order = []
    a = replicas("a")
    blocker = a.submit(steps=1, sleep=0.5)
    _until(lambda: a.cluster.get(blocker)["State"] == "Running")
    ids = {name: a.submit(steps=1, priority=priority) for name, priority in (("low", -1), ("high", 5), ("mid", 0))}
    for job_id in ids.values():
        a.cluster.wait(job_id, 10)
    finished = sorted(ids, key=lambda name: a.cluster.get(ids[name])["CompletionTime"])
    order.extend(finished)
    assert order == ["high", "mid", "low"]


def test_actions_from_the_other_replica_take_effect_where_the_job_runs(replicas):
    a = replicas("a")
    job_id = a.submit(steps=50, sleep=0.05)
    _until(lambda: a.cluster.get(job_id)["State"] == "Running")
    b = replicas("b")
    began = time.monotonic()
    b.cluster.act(job_id, "pause")
    _until(lambda: b.cluster.get(job_id)["State"] == "Paused", timeout=2)
    assert time.monotonic() - began < 1.5
    with pytest.raises(IllegalTransition):
        b.cluster.act(job_id, "resubmit")
    b.cluster.act(job_id, "cancel")
    job = b.cluster.wait(job_id, 10)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37)
    assert RUNS.get(job_id) == [], "the cancelled job's work is undone by its owner"
    b.cluster.delete(job_id)
    assert a.cluster.get(job_id) is None


def test_a_dead_replicas_jobs_are_taken_over_after_the_lease_and_finish_once(replicas):
    a = replicas("a", lease=2.0)
    job_id = a.submit(steps=20, sleep=0.05)
    _until(lambda: len(RUNS.get(job_id, [])) >= 5)
    a.die()
    b = replicas("b", lease=2.0)
    began = time.monotonic()
    job = b.cluster.wait(job_id, 30)
    assert job["State"] == "Success" and job["Replica"] == "b"
    assert time.monotonic() - began < 10
    steps_by_b = sorted(step for replica, step in RUNS[job_id] if replica == "b")
    assert steps_by_b == list(range(20)), "the new owner runs it again from its first step"
    assert b.cluster.counters["takeovers"] >= 1


def test_a_second_live_replica_with_the_same_identity_is_refused(replicas, postgres_database):
    replicas("a")
    twin = Replica(postgres_database, "a")
    try:
        with pytest.raises(cluster_database.IdentityInUse):
            twin.cluster.open()
    finally:
        twin.pool.close()


def _summed(*replicas_):
    total = {}
    for replica in replicas_:
        for key, count in replica.cluster.gauges().items():
            total[key] = total.get(key, 0) + count
    return total


def test_summed_over_replicas_each_job_counts_once(replicas):
    a, b = replicas("a"), replicas("b")
    ids = [a.submit(steps=1) for _ in range(3)] + [b.submit(steps=1) for _ in range(3)]
    for job_id in ids:
        a.cluster.wait(job_id, 10)
    assert _summed(a, b) == {("Test", "Success"): 6}
    assert (a.cluster.reporting(), b.cluster.reporting()) == (True, False)  # the smallest live identifier


def test_the_reporting_role_passes_at_once_when_its_holder_dies_and_comes_back_with_it(replicas):
    a, b, c = replicas("a"), replicas("b"), replicas("c")
    ids = [b.submit(steps=1) for _ in range(4)]
    for job_id in ids:
        b.cluster.wait(job_id, 10)
    assert _summed(a, b, c) == {("Test", "Success"): 4}
    a.die()  # its heartbeat is still fresh for a whole lease; its identity session is gone
    assert _summed(b, c) == {("Test", "Success"): 4}, "the very next look of the others"
    assert (b.cluster.reporting(), c.cluster.reporting()) == (True, False)
    b.die()
    assert _summed(c) == {("Test", "Success"): 4}
    again = replicas("a")  # a live replica of a smaller identifier takes the role back as it starts
    assert _summed(again, c) == {("Test", "Success"): 4}
    assert (again.cluster.reporting(), c.cluster.reporting()) == (True, False)


def test_a_replica_whose_identity_session_broke_reports_nothing_and_the_next_one_reports(replicas):
    a, b = replicas("a"), replicas("b")
    job_id = a.submit(steps=1)
    a.cluster.wait(job_id, 10)
    with a.cluster.transaction() as conn:  # as when PostgreSQL ended the session: the lock goes with it
        conn.execute("SELECT pg_terminate_backend(%s)", (a.cluster._identity.info.backend_pid,))
    _until(lambda: not a.cluster.reporting())
    assert a.cluster.gauges() == {}
    assert _summed(a, b) == {("Test", "Success"): 1}


def test_a_frozen_holder_loses_the_role_once_its_heartbeat_is_older_than_the_lease(replicas):
    a, b = replicas("a", lease=2.0), replicas("b", lease=2.0)
    job_id = a.submit(steps=1)
    a.cluster.wait(job_id, 10)
    assert _summed(a, b) == {("Test", "Success"): 1}
    a.cluster._stop.set()  # it renews nothing any more, its sessions stay open (a frozen process)
    for thread in a.cluster._threads:
        thread.join(5)
    _until(lambda: b.cluster.reporting(), timeout=10)
    assert not a.cluster.reporting(), "never both"
    assert _summed(b) == {("Test", "Success"): 1}


def test_the_change_feed_is_one_numbered_feed_for_the_cluster(replicas):
    a, b = replicas("a"), replicas("b")
    start = b.cluster.feed.last()
    job_id = a.submit(steps=1)
    a.cluster.wait(job_id, 10)
    changes = b.cluster.feed.since(start, 0)["Changes"]
    states = [change["State"] for change in changes if change["ID"] == job_id]
    assert states[0] == "Pending" and states[-1] == "Success"
    assert [change["Seq"] for change in changes] == sorted(change["Seq"] for change in changes)


def test_a_full_cluster_queue_answers_503(replicas):
    a = replicas("a", max_pending=3, workers=1)  # the running job counts too: every unfinished job does
    blocker = a.submit(steps=1, sleep=1.0)
    _until(lambda: a.cluster.get(blocker)["State"] == "Running")
    a.submit(), a.submit()
    with pytest.raises(AdvancedRestError) as caught:
        a.submit()
    assert caught.value.http_status == 503


def test_a_follower_of_the_change_feed_misses_nothing_while_replicas_write_at_once(replicas):
    a, b = replicas("a", workers=2), replicas("b", workers=2)
    seen, stop = [], threading.Event()

    def follow():
        last = 0
        while not stop.is_set():
            answer = b.cluster.feed.since(last, 0.2)
            seen.extend(change["Seq"] for change in answer["Changes"])
            last = answer["Last"]
        answer = b.cluster.feed.since(last, 0)
        seen.extend(change["Seq"] for change in answer["Changes"])

    follower = threading.Thread(target=follow)
    follower.start()
    ids = [(a if i % 2 else b).submit(steps=2) for i in range(40)]
    for job_id in ids:
        a.cluster.wait(job_id, 30)
    time.sleep(0.5)
    stop.set()
    follower.join(10)
    stored = [row[0] for row in a.cluster.run("SELECT seq FROM advanced_rest.changes ORDER BY seq", fetch="all")]
    assert sorted(seen) == stored, "every change is seen once, none skipped"
    assert stored == list(range(stored[0], stored[0] + len(stored))), "numbers with no gap"


def test_many_jobs_ending_at_once_with_a_short_history_all_end(replicas, postgres_database):
    a, b = replicas("a", workers=2), replicas("b", workers=2)
    for replica in (a, b):
        replica.cluster._history_size = 3
    ids = [(a if i % 2 else b).submit(steps=1) for i in range(60)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = postgres_database.query("SELECT count(*) FROM advanced_rest.jobs WHERE state NOT IN "
                                       "('Success', 'Failure')")
        if rows[0][0] == 0:
            break
        time.sleep(0.1)
    assert rows[0][0] == 0, "no job stays unfinished"
    assert len(postgres_database.query("SELECT id FROM advanced_rest.jobs")) <= 3 + 4  # trims skip busy rows
    assert len(ids) == 60


# -- deterministic interleavings: a thread held exactly where a race happens ------------------------

class Gate:
    """Holds the thread that reaches `hold()` until `release()`; `reached` tells it is there."""

    def __init__(self):
        self.reached, self._open = threading.Event(), threading.Event()

    def hold(self):
        self.reached.set()
        assert self._open.wait(30), "gate never released"

    def release(self):
        self._open.set()


def _feed_states(replica, job_id):
    return [(c["State"], c.get("Version")) for c in replica.cluster.feed.since(0, 0, limit=100000)["Changes"]
            if c["ID"] == job_id]


def _hold_fence(replica, gate, when):
    """Hold replica's worker before its move `when(report, move)` (model.Report) is written to the row."""
    original = replica.cluster.move  # the cluster's, as its workers call it

    def move(claim, move, report=None):
        if when(report, move):
            gate.hold()
        return original(claim, move, report)
    replica.cluster.move = move


def test_a_pause_against_a_step_write_in_flight_shows_paused_and_never_running_again(replicas):
    a = replicas("a")
    gate = Gate()
    _hold_fence(a, gate, lambda report, move: move == "step" and report.progress >= 30 and not gate.reached.is_set())
    job_id = a.submit(steps=10, sleep=0.01)
    assert gate.reached.wait(10)
    b = replicas("b")
    b.cluster.act(job_id, "pause")  # answered while the owner's write is in flight
    gate.release()
    job = _until(lambda: (lambda j: j if j["State"] == "Paused" else None)(b.cluster.get(job_id)))
    time.sleep(0.3)  # the owner has stopped: nothing lands after its Paused
    assert b.cluster.get(job_id)["State"] == "Paused"
    states = [state for state, _ in _feed_states(b, job_id)]
    assert states[states.index("Paused"):] == ["Paused"], states
    versions = [version for _, version in _feed_states(b, job_id)]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    b.cluster.act(job_id, "resume")  # accepted once Paused shows, on any replica
    assert b.cluster.wait(job_id, 20)["State"] == "Success"
    assert job["Progress"] < 100


def test_a_move_whose_transaction_fails_leaves_no_change_and_is_written_once_when_tried_again(replicas, monkeypatch):
    a = replicas("a")
    failed = []
    original = a.cluster._record_move

    def record_move(conn, document, version, before=None):
        original(conn, document, version, before)
        if document.get("State") == "Success" and not failed:
            failed.append(document["ID"])
            raise AdvancedRestError("injected: the connection broke before the commit", code=36)
    monkeypatch.setattr(a.cluster, "_record_move", record_move)
    job_id = a.submit(steps=2)
    assert a.cluster.wait(job_id, 10)["State"] == "Success"
    assert failed == [job_id]
    states = [state for state, _ in _feed_states(a, job_id)]
    assert states.count("Success") == 1 and states[-1] == "Success", states


def test_a_cancel_answered_while_the_owner_runs_survives_the_owners_death(replicas):
    a = replicas("a", lease=2.0)
    gate = Gate()
    _hold_fence(a, gate, lambda report, move: move == "step" and report.progress >= 20)
    job_id = a.submit(steps=10, sleep=0.01)
    assert gate.reached.wait(10)
    b = replicas("b", lease=2.0)
    b.cluster.act(job_id, "cancel")  # 200: the intent is in the row
    a.die()  # before its worker read the cancel
    gate.release()
    job = b.cluster.wait(job_id, 30)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37)
    assert RUNS.get(job_id) == [], "what the dead owner stored is undone by the new one"


def test_an_owner_frozen_past_its_lease_then_woken_stores_nothing_more_and_removes_nothing(replicas):
    a = replicas("a", lease=2.0)
    frozen = Gate()
    _hold_fence(a, frozen, lambda report, move: move == "step" and report.progress >= 30
                and not frozen.reached.is_set())
    renewing = threading.Event()
    original_renew = a.cluster._renew
    a.cluster._renew = lambda: renewing.wait(30) and original_renew()  # its lease loop frozen too
    job_id = a.submit(steps=10, sleep=0.01)
    assert frozen.reached.wait(10)
    steps_before = len(RUNS.get(job_id, []))
    b = replicas("b", lease=2.0)
    job = b.cluster.wait(job_id, 30)
    assert job["State"] == "Success" and job["Replica"] == "b"
    by_b = [step for replica, step in RUNS[job_id] if replica == "b"]
    renewing.set()
    frozen.release()  # a wakes: its next fence finds the claim gone
    time.sleep(1.0)
    by_a_after = [entry for entry in RUNS[job_id][steps_before:] if entry[0] == "a"]
    assert by_a_after == [], "the woken owner stored nothing more"
    assert [step for replica, step in RUNS[job_id] if replica == "b"] == by_b == list(range(10)), \
        "and removed nothing the new owner stored"
    assert b.cluster.get(job_id)["State"] == "Success"


def test_two_replicas_starting_at_once_with_one_identifier_one_is_refused(postgres_database):
    twins = [Replica(postgres_database, "twin") for _ in range(2)]
    outcomes, barrier = [], threading.Barrier(2)

    def open_(replica):
        barrier.wait()
        try:
            replica.cluster.open()
            outcomes.append("open")
        except cluster_database.IdentityInUse:
            outcomes.append("refused")
    threads = [threading.Thread(target=open_, args=(twin,)) for twin in twins]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert sorted(outcomes) == ["open", "refused"]
    finally:
        for twin in twins:
            if twin.cluster._identity is not None:
                twin.cluster._identity.close()
            twin.pool.close()


def test_a_step_finished_by_a_woken_owner_after_the_job_was_undone_elsewhere_is_removed(replicas):
    """The owner frozen inside a step (a cancel answered meanwhile), taken over and undone by another
    replica; woken, its step completes and stores: that instance must not outlive the Failure."""
    a = replicas("a", lease=2.0)
    inside_step, wake = threading.Event(), threading.Event()
    job_id = a.submit(steps=6, sleep=0.0)
    original_step = Counted.step

    def step(self, index):
        if self._replica == "a" and index == 2 and not inside_step.is_set():
            inside_step.set()
            assert wake.wait(30)  # frozen in the middle of its step
        original_step(self, index)
    Counted.step = step
    try:
        renewing = threading.Event()
        original_renew = a.cluster._renew
        a.cluster._renew = lambda: renewing.wait(30) and original_renew()
        assert inside_step.wait(10)
        b = replicas("b", lease=2.0)
        b.cluster.act(job_id, "cancel")
        job = b.cluster.wait(job_id, 30)
        assert (job["State"], job["ErrorCode"]) == ("Failure", 37)
        assert RUNS[job_id] == [], "undone by the new owner"
        renewing.set()
        wake.set()  # a's step completes now, after the undo: it stores step 2
        _until(lambda: RUNS[job_id] == [] and job_id not in a.cluster._claims, timeout=10)
    finally:
        Counted.step = original_step


def test_a_cancel_of_a_job_run_again_after_a_takeover_removes_what_the_first_run_stored_beyond(replicas):
    """The first owner stored steps 0-5 and died; the new owner runs it again from step 0 and is
    cancelled at step 2: the undo must also remove steps 3-5 (it runs to the end, then undoes)."""
    a = replicas("a", lease=2.0)
    job_id = a.submit(steps=10, sleep=0.02)
    _until(lambda: len(RUNS.get(job_id, [])) >= 6)
    a.die()
    b = replicas("b", lease=2.0)
    _until(lambda: any(replica == "b" and step >= 1 for replica, step in RUNS.get(job_id, [])), timeout=30)
    b.cluster.act(job_id, "cancel")
    job = b.cluster.wait(job_id, 30)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37)
    assert RUNS[job_id] == [], "nothing of either run is left"
