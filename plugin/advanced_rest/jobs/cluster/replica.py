"""The plugin's jobs shared by several Orthanc servers on one PostgreSQL (the cluster).

One truth per job: its row in `advanced_rest.jobs`. Every move, whoever makes it (a client's
action on any replica, the worker that runs the job, a takeover), is one transaction that locks
the row, decides from jobs/decisions.py (the transition table of jobs/model.py, as one server decides) and writes with a
compare-and-set on the row's version, recording the move in the change feed and notifying in
the same transaction. Nobody writes a copy taken earlier.

A replica with an idle worker claims the first job free to run; the claim carries a token that
only grows, and every move of its worker (workers.WorkerPool, as on one server) is checked against
(owner, token) in the row (see `move`): a worker whose claim was taken over stops at its next step and
undoes nothing. Liveness is the lease alone: a replica renews it every third of `LeaseSeconds`; when it
stops (dead, frozen, partitioned), any live replica sets its jobs free. Every lock wait and every
open transaction of the plugin's connections is bounded (see `session_options`), so a frozen
replica holding a row lock cannot hold the others.

An action is answered once its intent is in the row: the owner reads it at its next step.
Identity is a PostgreSQL advisory lock held for the replica's lifetime.
"""
import collections
import contextlib
import dataclasses
import datetime
import logging
import threading
import time

import psycopg
from psycopg.types.json import Jsonb

from ...errors import AdvancedRestError, DatabaseUnavailable, IllegalTransition, UnknownJob
from .. import decisions, model
from ..decisions import check_room
from ..model import Action, Claim, Move, Report, State, Verdict
from ..store import Store, decode_payload, encode_payload
from ..workers import WorkerPool
from . import sql
from .database import CHANNEL, IdentityInUse, application_name
from .feed import ClusterFeed, insert_change
from .peers import CorePeers

logger = logging.getLogger(__name__)

RELEASING_MOVES = (Move.SUCCEED, Move.SUSPEND, Move.STOP, Move.UNDONE)
UNFINISHED = sorted(model.UNFINISHED)  # the states whose rows MaxPendingJobs and MaxPendingBytes bound


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass
class _Lease:
    """A job this replica claimed: the token every move of its worker must still hold, and its lease."""

    token: int
    undoing: bool  # claimed to undo its work (a replay readers do not see)
    valid_until: float  # time.monotonic() by which the lease, last renewed, has run out


class Cluster:
    """One replica's view of the cluster's jobs, with one server's query and action interface (interfaces.Jobs), on `db` (a
    database.Database).

    Its `concurrent_jobs` workers (workers.WorkerPool) run what this replica claimed, each move through `move`;
    `runner_for(type, payload, document)` re-creates a runner from a saved request (the job's JSON: its ID, its Content); `on_change(job JSON)` is told
    of each job's end, `in_move(conn, job JSON, change number)` of each move inside its transaction (the
    webhooks' outbox). At most `max_pending` unfinished jobs holding at
    most `max_pending_bytes` of requests (each row's `size`) are accepted in the whole cluster.
    """

    def __init__(self, db, runner_for, core_action=None, concurrent_jobs=2, history_size=10, max_pending=None,
                 max_pending_bytes=None, on_change=None, in_move=None, counters=None):
        self._db = db  # database.Database: this replica's connections and notifications
        self.run, self.transaction, self.moving = db.run, db.transaction, db.moving
        self.replica = db.replica
        self._runner_for = runner_for
        self._lease = db.lease
        self._history_size = history_size
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._on_change = on_change  # (job JSON) -> None, once a job's end is recorded
        # (conn, job JSON, change number) -> None, inside each move's transaction (the webhooks' outbox)
        self.in_move = in_move
        self.counters = counters if counters is not None else {"claims": 0, "takeovers": 0, "renewals_failed": 0}
        self._stop = threading.Event()
        self._threads = []
        self._claims = {}  # job id -> _Lease
        self._claims_lock = threading.Lock()
        self._identity = None  # the connection holding this replica's identity lock
        self._loaded = threading.Event()
        self._workers = WorkerPool(self, concurrent_jobs)  # they claim, and report each move to `move`
        self.feed = ClusterFeed(db, on_change, in_move)  # the change feed, written by the moves below
        # The core jobs of every replica; `core_action(job id, action)` carries one out on this one's core.
        self.peers = CorePeers(db, core_action) if core_action is not None else None

    def loaded(self, timeout=0.0):
        """Whether the jobs can be answered (at once once started: they live in the database)."""
        return self._loaded.wait(timeout)

    # ---- lifecycle -------------------------------------------------------------------------

    def open(self):
        """Create the schema (once), take this replica's identity, and set free what it held before.

        Raises:
            IdentityInUse: a live replica holds the same identifier.
        """
        with self.transaction() as conn:
            found, version = sql.migrate(conn)
        if found != version:
            logger.warning("The cluster's schema advanced_rest migrated from version %d to %d", found, version)
        elif version > sql.LATEST:
            logger.warning("The cluster's schema advanced_rest is at version %d, newer than this plugin's %d "
                           "(a newer replica made it)", version, sql.LATEST)
        self._take_identity()
        self.run(sql.JOIN, (self.replica,))
        # What this replica owned before it stopped or crashed is free again: it holds nothing now.
        self._release(own=True)

    def _take_identity(self):
        """Hold the identity lock on a connection of its own, for as long as the replica lives."""
        conn = self._db.connect(application_name(self.replica) + "/identity")
        try:
            held = conn.execute(sql.TAKE_IDENTITY, (self.replica,)).fetchone()[0]
        except Exception:
            conn.close()
            raise
        if not held:
            conn.close()
            raise IdentityInUse("a live replica already uses DatabaseServerIdentifier %r" % self.replica)
        self._identity = conn

    def _keep_identity(self):
        """After PostgreSQL came back (the identity connection broke), take the identity again."""
        conn = self._identity
        try:
            if conn is not None and not conn.closed:
                conn.execute(sql.ALIVE)
                return
        except Exception:
            pass
        with contextlib.suppress(Exception):
            conn.close()
        self._identity = None
        try:
            self._take_identity()
            logger.warning("Replica %s holds its identity again", self.replica)
        except IdentityInUse:
            logger.error("Another live replica now uses DatabaseServerIdentifier %r: this one claims no job",
                         self.replica)
        except Exception as error:
            logger.warning("Could not take this replica's identity again (%s)", type(error).__name__)

    def start(self):
        """Start listening, renewing, the other replicas' actions on this one's core jobs, and the workers."""
        self._stop.clear()
        self._db.listen()
        loops = [(self._renew_loop, "lease")] + ([(self._peers_loop, "peers")] if self.peers is not None else [])
        for target, name in loops:
            thread = threading.Thread(target=target, name="advanced-rest-cluster-%s" % name, daemon=True)
            self._threads.append(thread)
            thread.start()
        self._loaded.set()
        self._workers.start()

    def stop(self):
        """Stop the workers (after their step) and the loops; what this replica still owns is set free for the
        others."""
        self._workers.stop()
        self._stop.set()
        self._db.stop()
        for thread in self._threads:
            thread.join(10)
        self._threads = []
        try:
            self._release(own=True)
            self.run(sql.LEAVE, (self.replica,))
            if self.peers is not None:
                self.peers.withdraw()
        except Exception:
            logger.exception("Could not hand this replica's jobs back to the cluster")
        with contextlib.suppress(Exception):
            if self._identity is not None:
                self._identity.close()

    # ---- submission and queries (interfaces.Jobs) ------------------------------------------

    def submit(self, job_type, runner, priority=0, job_id=None):
        """Save a new pending job for any replica to claim; durable when this returns. The runner is not
        kept: whoever claims the job re-creates it from the row's payload.

        Raises:
            QueueFull: `max_pending` jobs unfinished in the cluster, or its request would take theirs over
                `max_pending_bytes`.
            RequestTooLarge: its request alone is over `max_pending_bytes`.
        """
        job_id = job_id or model.new_job_id()
        now = _now()
        size = runner.size()
        check_room(0, 0, size, None, self._max_pending_bytes)  # never accepted: no need to ask the database
        payload = runner.payload()
        document = dict(model.new_document(job_id, job_type, priority, runner.content(), model.timestamp(now)),
                        Replica=self.replica)
        encoded = encode_payload(payload) if payload is not None else None

        def move(conn):  # again while a lock is busy (a loaded cluster, a replica frozen mid-move)
            self._check_room(conn, size)
            conn.execute(sql.SUBMIT, (job_id, job_type, int(priority), self.replica, Jsonb(document),
                          Jsonb(model.record_of(document)), encoded, size))
            self._record_move(conn, document, 0)
        self.moving(move)
        return job_id

    def _check_room(self, conn, size):
        """Refuse (see engine.check_room) a job of `size` bytes that the cluster's unfinished jobs leave no room
        for, counted under one advisory lock (sql.LOCK_SUBMISSIONS): one counted submission at a time, so that
        two replicas never both take the last room."""
        if self._max_pending is None and self._max_pending_bytes is None:
            return
        conn.execute(sql.LOCK_SUBMISSIONS)
        unfinished, held = conn.execute(sql.HELD, (UNFINISHED,)).fetchone()
        check_room(int(unfinished), int(held), size, self._max_pending, self._max_pending_bytes, " in the cluster")

    def get(self, job_id):
        row = self.run(sql.DOCUMENT, (job_id,), fetch="one")
        return row[0] if row else None

    def ids(self):
        return [row[0] for row in self.run(sql.IDS, fetch="all")]

    def all(self):
        return [row[0] for row in self.run(sql.DOCUMENTS, fetch="all")]

    def gauges(self):
        """{(type, state): count} of every job of the cluster when this replica holds the reporting role
        at this moment, else empty: summed over the replicas that answer, each job counts once (see
        sql.REPORTING), right after a replica died too."""
        pid = self._identity_pid()
        if pid is None:
            return collections.Counter()
        found = self.run(sql.GAUGES, self._role_params(pid), fetch="all")
        return collections.Counter({(job_type, state): count for _, job_type, state, count in found
                                    if job_type is not None})

    def reporting(self):
        """Whether this replica holds the reporting role at this moment (see sql.REPORTING)."""
        pid = self._identity_pid()
        return pid is not None and bool(self.run(sql.REPORTING, self._role_params(pid), fetch="one")[0])

    def _identity_pid(self):
        """The backend pid of the session holding this replica's identity lock, or None (it has none now)."""
        identity = self._identity
        if identity is None or identity.closed:
            return None
        return identity.info.backend_pid

    def _role_params(self, pid):
        return {"replica": self.replica, "lease": self._lease, "pid": pid}

    def wait(self, job_id, timeout):
        """The job's JSON once finished (on any replica), or when `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        generation = self._db.generation
        while True:
            document = self.get(job_id)
            if document is None:
                raise UnknownJob("No job found with this id: %s" % job_id)
            remaining = deadline - time.monotonic()
            if document["State"] in model.FINISHED or remaining <= 0:
                return document
            generation = self._db.wait_change(generation, min(remaining, 0.5))

    # ---- moves -----------------------------------------------------------------------------------

    def _locked_row(self, conn, job_id):
        found = conn.execute(sql.LOCKED_ROW, (job_id,)).fetchone()
        if found is None:
            return None, None
        state, version, owner, token, ran, undo, pause_requested, document = found
        return decisions.Row(State(state), version, owner, token, ran, undo, pause_requested), document

    def _existing_row(self, conn, job_id):
        """The locked row of a job asked for by a client (see _locked_row). Raises UnknownJob."""
        row, document = self._locked_row(conn, job_id)
        if row is None:
            raise UnknownJob("No job found with this id: %s" % job_id)
        return row, document

    def _write(self, conn, job_id, row, change, document):
        """Write `change` to the row read as `row` (compare-and-set on its version), with `document` (made by
        decisions.document_after, or the row's as it was) as the job's JSON."""
        state = change.state if change.state is not decisions.KEEP else row.state
        finished = change.state is not decisions.KEEP and change.state in model.FINISHED
        written = conn.execute(sql.WRITE, {
            "id": job_id, "version": row.version, "state": state, "release": change.release,
            "set_undo": change.undo is not decisions.KEEP,
            "undo": Jsonb(change.undo) if change.undo not in (decisions.KEEP, None) else None,
            "pause_requested": change.pause_requested if change.pause_requested is not decisions.KEEP else None,
            "set_ran": change.ran is not decisions.KEEP,
            "ran_by": self.replica if change.ran is not decisions.KEEP and change.ran else None,
            "finished": finished, "reset": change.reset,
            "document": Jsonb(document), "record": Jsonb(model.record_of(document))}).fetchone()
        if written is None:  # cannot happen under the row lock; never write over a newer row
            raise DatabaseUnavailable("Job %s changed meanwhile" % job_id)
        return written[0], document

    def _record_move(self, conn, document, version, before=None):
        """The move in the feed and a notification, in the caller's transaction (both go with its commit)."""
        if before is not None and (before.get("State"), before.get("Progress")) == \
                (document.get("State"), document.get("Progress")):
            return
        seq = insert_change(conn, {"ID": document.get("ID"), "Type": document.get("Type"),
                                   "State": document.get("State"), "Progress": document.get("Progress"),
                                   "Timestamp": document.get("Timestamp"), "Origin": "plugin",
                                   "Replica": document.get("Replica", self.replica), "Version": version})
        if self.in_move is not None:
            self.in_move(conn, document, seq)
        conn.execute(sql.NOTIFY, (CHANNEL, "move"))

    def _ended(self, document):
        if self._on_change is not None and document.get("State") in model.FINISHED:
            try:
                self._on_change(document)
            except Exception:
                logger.exception("Job change listener failed")

    def act(self, job_id, action):
        """Apply an action from any replica: decided against the row and written into it before this
        returns; the job's owner, if it runs, carries a pause or cancel out at its next step.

        Raises:
            UnknownJob, IllegalTransition, QueueFull or RequestTooLarge (a resubmission, see `submit`).
        """
        def move(conn):
            row, document = self._existing_row(conn, job_id)
            change = decisions.client_action(action, row)
            if change is None:
                return None
            if action == Action.RESUBMIT:  # unfinished again: it needs room as a new job does
                size = conn.execute(sql.SIZE, (job_id,)).fetchone()[0]
                self._check_room(conn, size)
            before = dict(document)
            document = decisions.document_after(document, change, None, model.timestamp(_now()))
            version, document = self._write(conn, job_id, row, change, document)
            if change.visible:
                self._record_move(conn, document, version, before)
            else:
                conn.execute(sql.NOTIFY, (CHANNEL, "action"))
            return document
        document = self.moving(move)
        if document is not None and document["State"] in model.FINISHED:
            self._ended(document)
            self._trim_history()

    def delete(self, job_id):
        """Forget a finished job, whichever replica ran it.

        Raises:
            UnknownJob, IllegalTransition.
        """
        def move(conn):
            row, document = self._existing_row(conn, job_id)
            if row.state not in model.FINISHED:
                raise IllegalTransition("Only a finished job can be deleted; this one is %s" % row.state)
            conn.execute(sql.DELETE, (job_id, row.version))
            self._record_move(conn, dict(document, State=model.DELETED), row.version + 1)
        self.moving(move)

    # ---- the workers' side (interfaces.JobStore): claims and every move of this replica's workers ----------

    def move(self, claim, move, report=None):
        """Write a worker's `move` with its `report` to the job's row if `claim` (the token under which it
        runs the job) is still the row's; a Verdict (the row's pause and cancel requests), or None when the
        claim is lost.

        While the database cannot be reached, the move is tried again until the claim's lease ran out
        (the job then belongs to whoever takes it over)."""
        job_id = claim.job_id
        with self._claims_lock:
            lease = self._claims.get(job_id)
        if lease is None or lease.token != claim.token:
            return None
        while True:
            began = time.monotonic()
            try:
                verdict, ended = self.moving(
                    lambda conn: self._fenced_move(conn, claim, move, report),
                    deadline=max(1.0, lease.valid_until - time.monotonic()))
            except AdvancedRestError as refused:
                if time.monotonic() < lease.valid_until and not self._stop.is_set():
                    self._stop.wait(0.5)
                    continue
                logger.warning("Job %s: the cluster's PostgreSQL could not be reached for the lease's length (%s)",
                               job_id, refused.details or refused.message)
                verdict, ended = None, None
            if verdict is None or verdict.orphaned or (verdict.applied and move in RELEASING_MOVES):
                with self._claims_lock:  # lost, or let go: this replica holds the job no more
                    if self._claims.get(job_id) is lease:
                        del self._claims[job_id]
            if ended is not None:  # after the commit: counted once, the history trimmed
                self._ended(ended)
                self._trim_history()
            if verdict is not None:
                lease.valid_until = max(lease.valid_until, began + self._lease)
            return verdict

    def _fenced_move(self, conn, claim, move, report):
        """(Verdict or None when the claim is lost, the job's JSON when this move ended it)."""
        row, current = self._locked_row(conn, claim.job_id)
        decision = decisions.worker_move(move, row, self.replica, claim.token, claim.undoing,
                                         report.error if report is not None else None)
        if decision is decisions.LOST:
            # A worker frozen inside a step finishes it when it wakes, after its claim was lost: if the
            # job has failed meanwhile, or is being undone (it can only end in Failure), what that step
            # stored must go too (removing twice what its new owner removes is harmless).
            doomed = row is not None and (row.state == State.FAILURE
                                          or row.undo is not None and row.state not in model.FINISHED)
            return (Verdict(applied=False, orphaned=True) if doomed else None), None
        change, applied = decision
        ended = None
        if change is not None:
            if not change.visible and (claim.undoing or move == Move.BEGIN_UNDO):
                written = dict(current)  # a replay, or an undo beginning: readers see the row as it was
            else:
                if claim.undoing and report is not None:  # its end: its progress as it was shown
                    report = Report(content=report.content)
                written = dict(decisions.document_after(current, change, report, model.timestamp(_now())),
                               Replica=self.replica)
            version, written = self._write(conn, claim.job_id, row, change, written)
            if not claim.undoing or change.visible:
                self._record_move(conn, written, version, current)
            if written["State"] in model.FINISHED:
                ended = written
        # A cancel outweighs a pause: a job being undone is never asked to pause.
        return Verdict(applied=applied, pause=row.pause_requested and row.undo is None,
                       cancel=row.undo is not None), ended

    def claim(self, stopping):
        """The first job free to run (or to be undone) in the cluster, claimed by this replica for one of its
        workers, waiting for one (woken by any replica's move); None once `stopping` is set or the replica
        stops."""
        generation = -1
        while not stopping.is_set() and not self._stop.is_set():
            try:
                if self._identity is not None:
                    found = self._claim_one()
                    if found is not None:
                        return found
            except Exception:
                logger.exception("Claiming cluster jobs failed")
                stopping.wait(1.0)
            generation = self._db.wait_change(generation, 1.0)
        return None

    def wake(self):
        """Nothing to do: a worker waiting in `claim` sees its pool's stop within a second."""

    # ---- claims, leases, takeovers ------------------------------------------------------------------

    def _peers_loop(self):
        """Carry out the actions other replicas sent to this one's core jobs, as they come."""
        generation = -1
        while not self._stop.is_set():
            try:
                self.peers.take_actions()
            except Exception:
                logger.exception("Carrying out actions on this replica's core jobs failed")
                self._stop.wait(1.0)
            generation = self._db.wait_change(generation, 1.0)

    def _claim_one(self):
        """Claim the first job free to run (or to be undone): its model.Claim, or None when there is none."""
        began = time.monotonic()
        with self.transaction() as conn:
            found = conn.execute(sql.CLAIM, (self.replica, self._lease)).fetchone()
        if found is None:
            return None
        job_id, job_type, document, payload, undo, token, ran = found
        self.counters["claims"] += 1
        with self._claims_lock:
            self._claims[job_id] = _Lease(token, undo is not None, began + self._lease)
        try:
            decoded = decode_payload(payload) if payload else None
        except ValueError:
            decoded = None
        runner = self._runner_for(job_type, decoded, document)
        return Claim(job_id, job_type, token, runner, undoing=undo is not None, replay=ran)

    def _renew_loop(self):
        while not self._stop.wait(self._lease / 3):
            try:
                self._renew()
            except Exception as error:
                self.counters["renewals_failed"] += 1
                logger.warning("Could not renew this replica's lease (%s)", type(error).__name__)
                continue
            try:
                self.take_over()
            except Exception:
                logger.exception("Taking over the jobs of dead replicas failed")

    def _renew(self):
        """Renew the leases of the claims this replica's workers hold, and only those: a row that names
        this replica without a claim of its workers (one lost track of) expires like a dead one's."""
        began = time.monotonic()
        with self._claims_lock:
            held = ["%s:%d" % (job_id, claim.token) for job_id, claim in self._claims.items()]
        renewed = self.run(sql.RENEW, (self._lease, self.replica, held), fetch="all") if held else []
        with self._claims_lock:
            for job_id, token in renewed:
                claim = self._claims.get(job_id)
                if claim is not None and claim.token == token:
                    claim.valid_until = began + self._lease
        self.run(sql.HEARTBEAT, (self.replica,))
        self._keep_identity()

    def take_over(self):
        """Set free the jobs whose owner's lease expired (dead, frozen or cut off); how many."""
        rows_ = self._release(own=False)
        if rows_:
            self.counters["takeovers"] += len(rows_)
            logger.warning("Took over %d job(s) of replica(s) %s whose lease expired", len(rows_),
                           ", ".join(sorted(set(rows_))))
        return len(rows_)

    def _release(self, own):
        """Set free (see decisions.release) this replica's jobs (`own`), or every job whose lease expired;
        each in a transaction of its own, as a move in the feed. The owners let go of."""
        statement, params = (sql.RELEASABLE_OWN, (self.replica,)) if own else (sql.RELEASABLE_EXPIRED, ())
        released = []
        while True:
            def move(conn):
                found = conn.execute(statement, params).fetchone()
                if found is None:
                    return None
                row, document = self._locked_row(conn, found[0])
                change = decisions.release(row)
                before = dict(document)
                document = decisions.document_after(document, change, None, model.timestamp(_now()))
                version, document = self._write(conn, found[0], row, change, document)
                self._record_move(conn, document, version, before)
                conn.execute(sql.NOTIFY, (CHANNEL, "pending"))
                return found[1]
            owner = self.moving(move)
            if owner is None:
                return released
            released.append(owner)

    def _trim_history(self):
        """Forget the oldest finished jobs beyond JobsHistorySize, in a transaction of its own: rows
        another transaction holds are skipped (the next trim gets them), so trims never deadlock."""
        try:
            with self.transaction() as conn:
                conn.execute(sql.LOCK_TRIM)
                conn.execute(sql.TRIM, (self._history_size,))
        except AdvancedRestError as error:
            logger.warning("Could not trim the cluster's jobs history (%s)", error.details)

    # ---- switching a single server to the cluster ----------------------------------------------

    def migrate(self, get_property, set_property):
        """Move the jobs a single server saved in its global properties into the cluster, once."""
        store = Store(None, get_property, set_property)  # read and cleared only
        records = store.read()
        if not records:
            return 0
        for record in records:
            payload = record.pop("Payload", None)
            document = dict(model.document_of(record, model.timestamp(_now())), Replica=self.replica)
            state = State(record["State"])
            state = State.PENDING if state in (State.RUNNING, State.RETRY) else state
            document["State"] = state
            undo = dict(decisions.CANCELED) if record.get("CancelRequested") and state not in model.FINISHED else None
            body = (payload or {}).get("Body")
            self.run(sql.ADOPT,
                     (record["ID"], record["Type"], record["Priority"], state, self.replica,
                      self.replica if record.get("Progress") or undo else None, Jsonb(undo) if undo else None,
                      Jsonb(document), Jsonb(model.record_of(document)),
                      encode_payload(payload) if payload is not None else None, state in model.FINISHED,
                      len(body) if body is not None else 0))
        store.clear()
        logger.warning("Moved %d job(s) saved by this server alone into the cluster", len(records))
        self.run(sql.NOTIFY, (CHANNEL, "pending"))
        return len(records)

