"""The plugin's jobs shared by several Orthanc servers on one PostgreSQL (the cluster).

Every replica reads and writes one table of jobs in a schema of the plugin's own; the
PostgreSQL index of Orthanc itself is never touched. A replica with an idle worker claims the
first pending job (priority, then submission order) with `FOR UPDATE SKIP LOCKED`, re-creates
its runner from the saved request and runs it in its local Engine; it owns the job until the
job ends, and renews a lease on what it owns. An action on a job owned by another replica is
queued for its owner in the database and carried out there. When a replica's lease expires
(it died or lost the database), a live one sets its jobs free again, and they run again from
their first step with the same UIDs. LISTEN/NOTIFY wakes claimers and waiters at once.

Lock rule: the database decides (row locks, one transaction per move); the local Engine keeps
its own lock for the jobs this replica runs.
"""
import contextlib
import datetime
import json
import logging
import threading
import time
import uuid

import psycopg

from ..errors import AdvancedRestError, IllegalTransition, QueueFull, UnknownJob
from . import model
from .store import decode_payload, encode_payload

logger = logging.getLogger(__name__)

SCHEMA_LOCK = 740074  # pg_advisory_xact_lock key: one replica creates the schema at a time
CHANGES_LOCK = SCHEMA_LOCK + 2  # numbering of changes (see _insert_change)
TRIM_LOCK = SCHEMA_LOCK + 3  # one history trim at a time
CHANNEL = "advanced_rest_jobs"
KEPT_CHANGES = 10000

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS advanced_rest;
CREATE TABLE IF NOT EXISTS advanced_rest.jobs (
    id text PRIMARY KEY,
    seq bigserial,
    type text NOT NULL,
    priority integer NOT NULL,
    state text NOT NULL,
    owner text,
    lease_until timestamptz,
    submitted_by text NOT NULL,
    ran_by text,
    cancel_requested boolean NOT NULL DEFAULT false,
    document jsonb NOT NULL,
    record jsonb NOT NULL,
    payload text,
    finished timestamptz
);
CREATE INDEX IF NOT EXISTS jobs_claim ON advanced_rest.jobs (priority DESC, seq) WHERE state = 'Pending';
CREATE TABLE IF NOT EXISTS advanced_rest.actions (
    seq bigserial PRIMARY KEY,
    job_id text NOT NULL,
    owner text NOT NULL,
    action text NOT NULL,
    core boolean NOT NULL DEFAULT false,
    done boolean NOT NULL DEFAULT false,
    status integer,
    details text
);
CREATE TABLE IF NOT EXISTS advanced_rest.core_jobs (
    replica text NOT NULL,
    id text NOT NULL,
    document jsonb NOT NULL,
    PRIMARY KEY (replica, id)
);
CREATE TABLE IF NOT EXISTS advanced_rest.changes (
    seq bigserial PRIMARY KEY,
    change jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS advanced_rest.replicas (
    id text PRIMARY KEY,
    heartbeat timestamptz NOT NULL,
    started timestamptz NOT NULL
);
"""


def conninfo(postgresql):
    """psycopg keyword arguments from Orthanc's own `PostgreSQL` section (no second set of credentials)."""
    if postgresql.get("ConnectionUri"):
        return {"conninfo": postgresql["ConnectionUri"]}
    return {
        "host": postgresql.get("Host", "localhost"),
        "port": int(postgresql.get("Port", 5432)),
        "dbname": postgresql.get("Database", "orthanc"),
        "user": postgresql.get("Username", "orthanc"),
        "password": postgresql.get("Password", ""),
        "sslmode": "require" if postgresql.get("EnableSsl") else "prefer",
    }


class IdentityInUse(RuntimeError):
    """Another live replica already uses this DatabaseServerIdentifier."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class Cluster:
    """One replica's view of the cluster's jobs, with the Engine's query and action interface.

    `engine` runs what this replica claimed; `runner_for(type, payload, record)` re-creates
    a runner from a saved request.
    """

    def __init__(self, pool, connect, replica, engine, runner_for, lease_seconds=30.0, history_size=10,
                 max_pending=None, on_change=None, counters=None, core_action=None):
        self._pool = pool  # psycopg_pool.ConnectionPool of autocommit connections
        self._connect = connect  # (application name) -> a new autocommit connection (for LISTEN)
        self.replica = replica
        self._engine = engine
        self._runner_for = runner_for
        self._lease = float(lease_seconds)
        self._history_size = history_size
        self._max_pending = max_pending
        self._on_change = on_change  # (change dict) -> None, after a change is recorded
        self._core_action = core_action  # (job id, action) -> None on this replica's core; raises OrthancError
        self.counters = counters if counters is not None else {"claims": 0, "takeovers": 0, "renewals_failed": 0}
        self._wake = threading.Condition()
        self._generation = 0  # bumped at each notification: waiters re-read
        self._stop = threading.Event()
        self._threads = []
        self._seen = {}  # core job id -> (State, Progress) last recorded
        self._published = None  # the core's jobs as last published
        self._unsynced = {}  # job id -> its last change the database refused (see engine_changed)

    # ---- connections --------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self):
        """A pooled connection inside one transaction; the database's errors become 503."""
        with _unavailable_as_503():
            with self._pool.connection() as conn:
                with conn.transaction():
                    yield conn

    def _run(self, sql, params=None, fetch=None):
        """Run one statement on a pooled connection (autocommit)."""
        with _unavailable_as_503():
            with self._pool.connection() as conn:
                cursor = conn.execute(sql, params)
                if fetch == "one":
                    return cursor.fetchone()
                if fetch == "all":
                    return cursor.fetchall()
                return None

    # ---- lifecycle -------------------------------------------------------------------------

    def open(self):
        """Create the schema (once), and claim this replica's identity.

        Raises:
            IdentityInUse: a live replica (connected now) uses the same identifier.
        """
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA)
        others = self._run("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND pid <> "
                           "pg_backend_pid()", (application_name(self.replica),), fetch="one")[0]
        listening = self._run("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                              (application_name(self.replica) + "/listen",), fetch="one")[0]
        if listening:
            raise IdentityInUse("a live replica already uses DatabaseServerIdentifier %r (%d connection(s))"
                                % (self.replica, others + listening))
        self._run("INSERT INTO advanced_rest.replicas (id, heartbeat, started) VALUES (%s, now(), now()) "
                  "ON CONFLICT (id) DO UPDATE SET heartbeat = now(), started = now()", (self.replica,))
        # What this replica owned before it stopped or crashed is free again: it holds nothing now.
        self._release_own()

    def start(self):
        """Start listening, claiming and renewing."""
        self._stop.clear()
        for target, name in ((self._listen, "listen"), (self._claim_loop, "claim"), (self._renew_loop, "lease")):
            thread = threading.Thread(target=target, name="advanced-rest-cluster-%s" % name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self):
        """Stop the loops; what this replica still owns is set free for the others."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(10)
        self._threads = []
        try:
            self._release_own()
            self._run("DELETE FROM advanced_rest.replicas WHERE id = %s", (self.replica,))
            self._run("DELETE FROM advanced_rest.core_jobs WHERE replica = %s", (self.replica,))
            self._notify("pending")
        except Exception:
            logger.exception("Could not hand this replica's jobs back to the cluster")

    def _release_own(self):
        self._run("""UPDATE advanced_rest.jobs SET owner = NULL, lease_until = NULL,
                     state = CASE WHEN state IN ('Running', 'Retry') THEN 'Pending' ELSE state END,
                     document = jsonb_set(document, '{State}', to_jsonb(CASE WHEN state IN ('Running', 'Retry')
                                          THEN 'Pending' ELSE state END))
                     WHERE owner = %s AND state NOT IN ('Success', 'Failure')""", (self.replica,))

    # ---- notifications ---------------------------------------------------------------------

    def _notify(self, what):
        self._run("SELECT pg_notify(%s, %s)", (CHANNEL, what))

    def _woken(self):
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    def _listen(self):
        while not self._stop.is_set():
            try:
                conn = self._connect(application_name(self.replica) + "/listen")
                with conn:
                    conn.execute("LISTEN %s" % CHANNEL)
                    self._woken()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self._woken()
                        self._woken_if_idle()
            except Exception as error:
                logger.warning("Listening to PostgreSQL failed (%s); retrying", type(error).__name__)
                self._stop.wait(1.0)

    def _woken_if_idle(self):
        # No notification for a while: let the loops look anyway (a lost NOTIFY costs 0.5 s, no more).
        self._woken()

    def _wait_change(self, generation, timeout):
        with self._wake:
            if self._generation == generation:
                self._wake.wait(timeout)
            return self._generation

    # ---- submission and queries (the Engine's interface) ------------------------------------

    def submit(self, job_type, runner, priority=0, job_id=None):
        """Save a new pending job for any replica to claim; durable when this returns.

        Raises:
            QueueFull: `max_pending` jobs already pending in the cluster.
        """
        job_id = job_id or str(uuid.uuid4())
        now = _now()
        job = model.Job(id=job_id, type=job_type, priority=int(priority), runner=runner, sequence=0,
                        created=now, changed=now)
        job.content = runner.content()
        payload = runner.payload()
        document = self._document(job.to_json(), self.replica)
        record = _record_of(document)
        with self._transaction() as conn:
            if self._max_pending is not None:
                # One submission at a time counts: the limit holds across replicas.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK + 1,))
                pending = conn.execute("SELECT count(*) FROM advanced_rest.jobs WHERE state = 'Pending'"
                                       ).fetchone()[0]
                if pending >= self._max_pending:
                    raise QueueFull("%d plugin jobs are already pending in the cluster "
                                    "(AdvancedRest.MaxPendingJobs)" % pending)
            conn.execute("""INSERT INTO advanced_rest.jobs (id, type, priority, state, submitted_by, document,
                            record, payload) VALUES (%s, %s, %s, 'Pending', %s, %s, %s, %s)""",
                         (job_id, job_type, int(priority), self.replica, json.dumps(document), json.dumps(record),
                          encode_payload(payload) if payload is not None else None))
            self._record_change(conn, document, "plugin")
        self._notify("pending")
        return job_id

    def get(self, job_id):
        row = self._run("SELECT document FROM advanced_rest.jobs WHERE id = %s", (job_id,), fetch="one")
        return row[0] if row else None

    def ids(self):
        return [row[0] for row in self._run("SELECT id FROM advanced_rest.jobs ORDER BY seq", fetch="all")]

    def all(self):
        return [row[0] for row in self._run("SELECT document FROM advanced_rest.jobs ORDER BY seq", fetch="all")]

    def mine(self):
        """The jobs this replica answers for in metrics (ran them, or submitted them and none ran them):
        summed over the replicas, each job counts once."""
        return [row[0] for row in self._run(
            "SELECT document FROM advanced_rest.jobs WHERE coalesce(ran_by, submitted_by) = %s ORDER BY seq",
            (self.replica,), fetch="all")]

    def output(self, job_id, name):
        if self.get(job_id) is None:
            raise UnknownJob("No job found with this id: %s" % job_id)
        return self._engine.output(job_id, name) if self._engine.get(job_id) else None

    def delete_output(self, job_id, name):
        if self.get(job_id) is None:
            raise UnknownJob("No job found with this id: %s" % job_id)
        return self._engine.delete_output(job_id, name) if self._engine.get(job_id) else False

    def wait(self, job_id, timeout):
        """The job's JSON once finished (on any replica), or when `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        generation = self._generation
        while True:
            document = self.get(job_id)
            if document is None:
                raise UnknownJob("No job found with this id: %s" % job_id)
            remaining = deadline - time.monotonic()
            if document["State"] in model.FINISHED or remaining <= 0:
                return document
            generation = self._wait_change(generation, min(remaining, 0.5))

    # ---- actions ------------------------------------------------------------------------------

    def act(self, job_id, action):
        """Apply an action from any replica: at once on a job nobody holds, else by its owner.

        Raises:
            UnknownJob, IllegalTransition.
        """
        with self._transaction() as conn:
            row = conn.execute("SELECT state, owner, ran_by, document FROM advanced_rest.jobs WHERE id = %s "
                               "FOR UPDATE", (job_id,)).fetchone()
            if row is None:
                raise UnknownJob("No job found with this id: %s" % job_id)
            state, owner, ran_by, document = row
            outcome = model.outcome(action, state)
            if outcome is None or action not in model.ACTIONS:
                raise IllegalTransition("Cannot %s a job in state %s" % (action, state))
            if outcome == model.NOTHING:
                return
            if owner is not None:
                if owner != self.replica:
                    conn.execute("INSERT INTO advanced_rest.actions (job_id, owner, action) VALUES (%s, %s, %s)",
                                 (job_id, owner, action))
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "action"))
                    local = False
                else:
                    local = True
            else:
                local = False
                self._act_unowned(conn, job_id, action, outcome, ran_by, document)
        if owner == self.replica:
            self._engine.act(job_id, action)
        elif owner is not None:
            self._await_action(job_id, state)
        else:
            self._notify("pending")
            self._trim_history()  # a job cancelled here may have ended
        return local

    def _act_unowned(self, conn, job_id, action, outcome, ran_by, document):
        """A move on a job no replica holds, in the caller's transaction."""
        if outcome == model.UNDO:
            if ran_by is None:  # never ran: nothing to undo
                document = dict(document, State=model.FAILURE, ErrorCode=model.CANCELED_JOB,
                                ErrorDescription=model.CANCELED_DESCRIPTION, CompletionTime=model.timestamp(_now()))
                self._set_document(conn, job_id, document, finished=True)
            else:
                # It ran somewhere: whoever claims it runs it again to find its instances, then undoes them.
                conn.execute("UPDATE advanced_rest.jobs SET state = 'Pending', cancel_requested = true, "
                             "document = jsonb_set(document, '{State}', '\"Pending\"') WHERE id = %s", (job_id,))
            return
        if outcome == model.LATER:
            return  # only a running job has LATER moves, and a running job has an owner
        document = dict(document, State=outcome)
        if action == "resubmit":
            document.update(Progress=0, ErrorCode=0, ErrorDescription="Success", ErrorDetails="",
                            EffectiveRuntime=0.0)
            document.pop("CompletionTime", None)
            conn.execute("UPDATE advanced_rest.jobs SET cancel_requested = false, finished = NULL WHERE id = %s",
                         (job_id,))
        self._set_document(conn, job_id, document)

    def _await_action(self, job_id, state, timeout=1.0):
        """Give the owner up to `timeout` s to carry the action out, so that the answer reflects it."""
        deadline = time.monotonic() + timeout
        generation = self._generation
        while time.monotonic() < deadline:
            pending = self._run("SELECT count(*) FROM advanced_rest.actions WHERE job_id = %s", (job_id,),
                                fetch="one")[0]
            if not pending:
                return
            generation = self._wait_change(generation, 0.1)

    def delete(self, job_id):
        """Forget a finished job, whichever replica ran it.

        Raises:
            UnknownJob, IllegalTransition.
        """
        with self._transaction() as conn:
            row = conn.execute("SELECT state, document FROM advanced_rest.jobs WHERE id = %s FOR UPDATE",
                               (job_id,)).fetchone()
            if row is None:
                raise UnknownJob("No job found with this id: %s" % job_id)
            if row[0] not in model.FINISHED:
                raise IllegalTransition("Only a finished job can be deleted; this one is %s" % row[0])
            conn.execute("DELETE FROM advanced_rest.jobs WHERE id = %s", (job_id,))
            self._record_change(conn, dict(row[1], State="Deleted"), "plugin")
        self._engine.forget(job_id)
        self._notify("deleted")

    # ---- what the local engine does -------------------------------------------------------------

    def engine_changed(self, snapshot):
        """The local Engine's job changed: write it through (only while this replica owns it).

        A write the database refuses (a lost connection, a deadlock it broke) is tried again
        three times, then by the lease loop until it goes through: a job that ended here must
        never stay Running in the cluster's view.
        """
        for attempt in range(3):
            try:
                self._write_through(snapshot)
                self._unsynced.pop(snapshot["ID"], None)
                return
            except AdvancedRestError as error:
                logger.warning("Job %s: could not write its change to PostgreSQL (%s); %s", snapshot["ID"],
                               error.details, "retrying" if attempt < 2 else "the lease loop will retry")
                time.sleep(0.05 * (attempt + 1))
        self._unsynced[snapshot["ID"]] = snapshot

    def _write_through(self, snapshot):
        finished = snapshot["State"] in model.FINISHED
        document = self._document(snapshot, self.replica)
        with self._transaction() as conn:
            updated = conn.execute(
                """UPDATE advanced_rest.jobs SET state = %s, document = %s, record = %s, ran_by = %s,
                   owner = CASE WHEN %s THEN NULL ELSE owner END, lease_until = CASE WHEN %s THEN NULL
                   ELSE lease_until END, finished = CASE WHEN %s THEN now() ELSE NULL END,
                   cancel_requested = CASE WHEN %s THEN false ELSE cancel_requested END
                   WHERE id = %s AND owner = %s""",
                (snapshot["State"], json.dumps(document), json.dumps(_record_of(document)), self.replica,
                 finished, finished, finished, finished, snapshot["ID"], self.replica)).rowcount
            if not updated:
                return  # taken over meanwhile (our lease expired): the new owner's word counts
            self._record_change(conn, document, "plugin")
        self._notify("changed")
        if finished:
            self._engine.forget(snapshot["ID"])
            self._trim_history()

    def _resync(self):
        """Write again what the database refused before (see engine_changed)."""
        for job_id, snapshot in list(self._unsynced.items()):
            latest = self._engine.get(job_id) or snapshot
            try:
                self._write_through(latest)
                self._unsynced.pop(job_id, None)
            except AdvancedRestError:
                return  # still unavailable: next round

    def persist(self):
        """The Engine's durability hook: every local job written through now."""
        for record, _runner in self._engine.export():
            job = self._engine.get(record["ID"])
            if job is not None:
                self._write_record(job, record)

    def _write_record(self, document, record):
        # Only the cancel intent: states are written through by engine_changed, and writing a snapshot
        # taken earlier here could land after a newer state (a pause answered, then seen Running again).
        self._run("UPDATE advanced_rest.jobs SET cancel_requested = %s WHERE id = %s AND owner = %s",
                  (bool(record.get("CancelRequested")), document["ID"], self.replica))

    # ---- loops ------------------------------------------------------------------------------------

    def _claim_loop(self):
        generation = -1
        while not self._stop.is_set():
            try:
                self._take_actions()
                while self._engine.idle_workers() > 0 and self._claim_one():
                    pass
            except Exception:
                logger.exception("Claiming cluster jobs failed")
                self._stop.wait(1.0)
            generation = self._wait_change(generation, 1.0)

    def _claim_one(self):
        """Claim the first pending job free to run; False when there is none."""
        with self._transaction() as conn:
            row = conn.execute(
                """UPDATE advanced_rest.jobs SET owner = %s, ran_by = %s,
                          lease_until = now() + %s * interval '1 second'
                   WHERE id = (SELECT id FROM advanced_rest.jobs WHERE state = 'Pending' AND owner IS NULL
                               ORDER BY priority DESC, seq FOR UPDATE SKIP LOCKED LIMIT 1)
                   RETURNING id, type, record, payload, cancel_requested""",
                (self.replica, self.replica, self._lease)).fetchone()
        if row is None:
            return False
        job_id, job_type, record, payload, cancel_requested = row
        self.counters["claims"] += 1
        record = dict(record, CancelRequested=cancel_requested)
        try:
            decoded = decode_payload(payload) if payload else None
        except ValueError:
            decoded = None
        runner = self._runner_for(job_type, decoded, record)
        self._engine.adopt(record, runner)
        return True

    def _take_actions(self):
        """Carry out the actions other replicas queued for this replica's jobs (plugin or core)."""
        with self._transaction() as conn:
            rows = conn.execute(
                "DELETE FROM advanced_rest.actions WHERE owner = %s AND NOT core RETURNING seq, job_id, action",
                (self.replica,)).fetchall()
            core = conn.execute(
                "SELECT seq, job_id, action FROM advanced_rest.actions WHERE owner = %s AND core AND NOT done",
                (self.replica,)).fetchall()
        for _, job_id, action in sorted(rows):
            try:
                self._engine.act(job_id, action)
            except (UnknownJob, IllegalTransition) as error:
                logger.info("Job %s: %s asked by another replica not applied: %s", job_id, action, error.details)
        for seq, job_id, action in sorted(core):
            status, details = 200, ""
            try:
                self._core_action(job_id, action)
            except AdvancedRestError as error:
                # Over HTTP the core answers 400 for an unknown job and an illegal move alike; through
                # the SDK the same refusal may carry another code: answer what its HTTP route would.
                status = 400 if error.http_status < 500 else error.http_status
                details = "the core cannot %s job %s (unknown, or not allowed in its state)" % (action, job_id) \
                    if status == 400 else (error.details or error.message)
            self._run("UPDATE advanced_rest.actions SET done = true, status = %s, details = %s WHERE seq = %s",
                      (status, details, seq))
        if rows or core:
            self._notify("acted")

    # ---- the core jobs of every replica ----------------------------------------------------------

    def publish_core(self, jobs):
        """This replica's core jobs, for the others to list (written only when they changed)."""
        if jobs == self._published:
            return
        with self._transaction() as conn:
            conn.execute("DELETE FROM advanced_rest.core_jobs WHERE replica = %s", (self.replica,))
            for job in jobs:
                conn.execute("INSERT INTO advanced_rest.core_jobs (replica, id, document) VALUES (%s, %s, %s) "
                             "ON CONFLICT DO NOTHING",
                             (self.replica, job.get("ID"), json.dumps(dict(job, Replica=self.replica))))
        self._published = jobs

    def peer_core_jobs(self):
        """The core jobs of the other live replicas (each with its "Replica")."""
        return [row[0] for row in self._run(
            """SELECT c.document FROM advanced_rest.core_jobs c JOIN advanced_rest.replicas r ON r.id = c.replica
               WHERE c.replica <> %s AND r.heartbeat > now() - %s * interval '1 second'
               ORDER BY c.replica, c.document->>'CreationTime'""", (self.replica, self._lease), fetch="all")]

    def peer_core_job(self, job_id):
        """A core job of another live replica, or None."""
        row = self._run(
            """SELECT c.document FROM advanced_rest.core_jobs c JOIN advanced_rest.replicas r ON r.id = c.replica
               WHERE c.id = %s AND c.replica <> %s AND r.heartbeat > now() - %s * interval '1 second'""",
            (job_id, self.replica, self._lease), fetch="one")
        return row[0] if row else None

    def act_on_peer_core_job(self, job_id, action, timeout=5.0):
        """Have the replica running a core job carry out `action` (or "delete") on it; its answer.

        Raises:
            UnknownJob: no live replica runs it. BadRequest-like errors: what its core answered.
        """
        job = self.peer_core_job(job_id)
        if job is None:
            raise UnknownJob("No job found with this id: %s" % job_id)
        owner = job["Replica"]
        row = self._run("INSERT INTO advanced_rest.actions (job_id, owner, action, core) VALUES (%s, %s, %s, true) "
                        "RETURNING seq", (job_id, owner, action), fetch="one")
        self._notify("action")
        deadline = time.monotonic() + timeout
        generation = self._generation
        try:
            while time.monotonic() < deadline:
                done = self._run("SELECT status, details FROM advanced_rest.actions WHERE seq = %s AND done",
                                 (row[0],), fetch="one")
                if done is not None:
                    status, details = done
                    if status != 200:
                        raise AdvancedRestError("Replica %s: %s" % (owner, details),
                                                code=8 if status == 400 else -1, status=status)
                    return
                generation = self._wait_change(generation, 0.1)
        finally:
            self._run("DELETE FROM advanced_rest.actions WHERE seq = %s", (row[0],))
        raise AdvancedRestError("Replica %s, which runs core job %s, did not answer within %g s"
                                % (owner, job_id, timeout), code=36)

    def _renew_loop(self):
        while not self._stop.wait(self._lease / 3):
            try:
                self._run("UPDATE advanced_rest.jobs SET lease_until = now() + %s * interval '1 second' "
                          "WHERE owner = %s", (self._lease, self.replica))
                self._run("UPDATE advanced_rest.replicas SET heartbeat = now() WHERE id = %s", (self.replica,))
            except Exception as error:
                self.counters["renewals_failed"] += 1
                logger.warning("Could not renew this replica's lease (%s)", type(error).__name__)
                continue
            try:
                self._resync()
                self.take_over()
            except Exception:
                logger.exception("Taking over the jobs of dead replicas failed")

    def take_over(self):
        """Set free the jobs whose owner's lease expired (a dead replica's); how many."""
        rows = self._run(
            """WITH expired AS (
                   SELECT id, owner FROM advanced_rest.jobs
                   WHERE owner IS NOT NULL AND owner <> %s AND lease_until < now()
                         AND state NOT IN ('Success', 'Failure')
                   FOR UPDATE SKIP LOCKED)
               UPDATE advanced_rest.jobs AS job SET owner = NULL, lease_until = NULL,
                      state = CASE WHEN job.state IN ('Running', 'Retry') THEN 'Pending' ELSE job.state END,
                      document = jsonb_set(job.document, '{State}', to_jsonb(CASE WHEN job.state IN
                                           ('Running', 'Retry') THEN 'Pending' ELSE job.state END))
               FROM expired WHERE job.id = expired.id
               RETURNING job.id, expired.owner""", (self.replica,), fetch="all")
        if rows:
            self.counters["takeovers"] += len(rows)
            logger.warning("Took over %d job(s) of replica(s) %s whose lease expired", len(rows),
                           ", ".join(sorted({owner for _, owner in rows})))
            self._notify("pending")
        return len(rows)

    # ---- internals ---------------------------------------------------------------------------------

    def _document(self, job_json, replica):
        return dict(job_json, Replica=replica)

    def _set_document(self, conn, job_id, document, finished=False):
        conn.execute("UPDATE advanced_rest.jobs SET state = %s, document = %s, record = %s, "
                     "finished = CASE WHEN %s THEN now() ELSE finished END WHERE id = %s",
                     (document["State"], json.dumps(document), json.dumps(_record_of(document)), finished, job_id))
        self._record_change(conn, document, "plugin")

    def _record_change(self, conn, document, origin):
        change = {"ID": document.get("ID"), "Type": document.get("Type"), "State": document.get("State"),
                  "Progress": document.get("Progress"), "Timestamp": document.get("Timestamp"), "Origin": origin,
                  "Replica": document.get("Replica", self.replica)}
        _insert_change(conn, change)
        if self._on_change is not None and document.get("State") in model.FINISHED:
            try:
                self._on_change(document)
            except Exception:
                logger.exception("Job change listener failed")

    def _trim_history(self):
        """Forget the oldest finished jobs beyond JobsHistorySize, in a transaction of its own: rows
        another transaction holds are skipped (the next trim gets them), so trims never deadlock."""
        try:
            with self._transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (TRIM_LOCK,))
                conn.execute("""DELETE FROM advanced_rest.jobs WHERE id IN (
                                    SELECT id FROM advanced_rest.jobs WHERE state IN ('Success', 'Failure')
                                    ORDER BY finished DESC NULLS LAST, seq DESC OFFSET %s
                                    FOR UPDATE SKIP LOCKED)""", (self._history_size,))
        except AdvancedRestError as error:
            logger.warning("Could not trim the cluster's jobs history (%s)", error.details)

    # ---- the change feed ({Root}/jobs/changes) -----------------------------------------------------

    def record(self, job, origin):
        """A core job's change (state or progress moved), in the cluster's feed with this replica's name."""
        key = (job.get("State"), job.get("Progress"))
        if self._seen.get(job.get("ID")) == key:
            return
        self._seen[job.get("ID")] = key
        with self._transaction() as conn:
            _insert_change(conn, {"ID": job.get("ID"), "Type": job.get("Type"), "State": job.get("State"),
                                  "Progress": job.get("Progress"), "Timestamp": job.get("Timestamp"),
                                  "Origin": origin, "Replica": self.replica})
        self._notify("change")
        if job.get("State") in model.FINISHED and self._on_change is not None:
            self._on_change(job)

    def last(self):
        row = self._run("SELECT coalesce(max(seq), 0) FROM advanced_rest.changes", fetch="one")
        return row[0]

    def wait_after(self, seq, timeout):
        generation = self._generation
        deadline = time.monotonic() + timeout
        while True:
            last = self.last()
            remaining = deadline - time.monotonic()
            if last > seq or remaining <= 0:
                return last
            generation = self._wait_change(generation, min(remaining, 0.5))

    def since(self, since, timeout, limit=1000):
        """{"Changes", "Last", "Done"} after `since`, waiting up to `timeout` s for one."""
        self.wait_after(since, timeout)
        rows = self._run("SELECT seq, change FROM advanced_rest.changes WHERE seq > %s ORDER BY seq LIMIT %s",
                         (since, limit + 1), fetch="all")
        changes = [dict(change, Seq=seq) for seq, change in rows[:limit]]
        if changes:
            last = changes[-1]["Seq"]
        else:  # as a single server: a `since` beyond the newest change answers the newest number
            newest = self.last()
            last = since if since <= newest else newest
        self._run("DELETE FROM advanced_rest.changes WHERE seq < (SELECT max(seq) FROM advanced_rest.changes) - %s",
                  (KEPT_CHANGES,))
        return {"Changes": changes, "Last": last, "Done": len(rows) <= limit}

    def forget(self, job_id):
        """A core job left the core's history: stop remembering what was last recorded of it."""
        self._seen.pop(job_id, None)

    # ---- switching a single server to the cluster ----------------------------------------------

    def migrate(self, store, runner_for):
        """Move the jobs a single server saved in its global properties into the cluster, once."""
        records = store.read()
        if not records:
            return 0
        for record in records:
            payload = record.pop("Payload", None)
            document = self._document(_document_of(record), self.replica)
            state = "Pending" if record["State"] in (model.RUNNING, model.RETRY) else record["State"]
            document["State"] = state
            self._run("""INSERT INTO advanced_rest.jobs (id, type, priority, state, submitted_by, ran_by,
                         cancel_requested, document, record, payload, finished)
                         VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                                 CASE WHEN %s THEN now() ELSE NULL END) ON CONFLICT (id) DO NOTHING""",
                      (record["ID"], record["Type"], record["Priority"], state, self.replica,
                       self.replica if record.get("Progress") else None, bool(record.get("CancelRequested")),
                       json.dumps(document), json.dumps(_record_of(document)),
                       encode_payload(payload) if payload is not None else None, state in model.FINISHED))
        store.clear()
        logger.warning("Moved %d job(s) saved by this server alone into the cluster", len(records))
        self._notify("pending")
        return len(records)


DATABASE_UNAVAILABLE = 36  # Orthanc's own code for it: HTTP 503


def _insert_change(conn, change):
    """Number and store one change, in the caller's transaction. The lock, held until that transaction
    ends, makes numbers commit in order: a reader following `since` never skips a change committed
    after a higher-numbered one."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGES_LOCK,))
    conn.execute("INSERT INTO advanced_rest.changes (change) VALUES (%s)", (json.dumps(change),))


@contextlib.contextmanager
def _unavailable_as_503():
    try:
        yield
    except psycopg.OperationalError as error:
        raise AdvancedRestError("The cluster's PostgreSQL cannot be reached (%s)" % type(error).__name__,
                                code=DATABASE_UNAVAILABLE) from error
    except psycopg.Error as error:  # reached, but it refused (privileges, a broken schema...)
        raise AdvancedRestError("The cluster's PostgreSQL refused the plugin's request (%s)"
                                % type(error).__name__, code=DATABASE_UNAVAILABLE) from error
    except Exception as error:
        if type(error).__module__.startswith("psycopg_pool"):  # PoolTimeout: every connection busy or broken
            raise AdvancedRestError("No connection to the cluster's PostgreSQL (%s)" % type(error).__name__,
                                    code=DATABASE_UNAVAILABLE) from error
        raise


def application_name(replica):
    """How this replica's connections are named in pg_stat_activity (the identity check reads it)."""
    return "advanced-rest/%s" % replica


def _record_of(document):
    """The restore record (see Engine.export) of a job's JSON."""
    return {
        "ID": document["ID"], "Type": document["Type"], "Priority": document["Priority"],
        "State": document["State"], "Progress": document.get("Progress", 0),
        "CreationTime": _iso(document.get("CreationTime")), "CompletionTime": _iso(document.get("CompletionTime")),
        "Runtime": document.get("EffectiveRuntime", 0.0), "ErrorCode": document.get("ErrorCode", 0),
        "ErrorDescription": document.get("ErrorDescription", "Success"),
        "ErrorDetails": document.get("ErrorDetails", ""), "Content": document.get("Content", {}),
    }


def _document_of(record):
    """A job's JSON from a restore record (see Engine.export)."""
    def stamp(text):
        return model.timestamp(datetime.datetime.fromisoformat(text)) if text else None
    document = {
        "ID": record["ID"], "Type": record["Type"], "Priority": record["Priority"], "State": record["State"],
        "Progress": int(round(record.get("Progress", 0))), "CreationTime": stamp(record.get("CreationTime")),
        "Timestamp": model.timestamp(_now()), "EffectiveRuntime": record.get("Runtime", 0.0),
        "ErrorCode": record.get("ErrorCode", 0), "ErrorDescription": record.get("ErrorDescription", "Success"),
        "ErrorDetails": record.get("ErrorDetails", ""), "Content": record.get("Content", {}),
    }
    if record.get("CompletionTime"):
        document["CompletionTime"] = stamp(record["CompletionTime"])
    return document


def _iso(stamp):
    """Orthanc's job time (20240506T070809.123456) as ISO 8601, or None."""
    if not stamp:
        return None
    moment = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=datetime.timezone.utc)
    return moment.isoformat()
