"""The cluster's outbox, in PostgreSQL: deliveries written by the moves themselves (in their
transactions), claimed one at a time by any replica with a lease and a token (a replica that died or
froze mid-delivery loses it to another; its late outcome changes nothing)."""
import collections
import logging
import random
import threading
import time

from ..errors import DeliveryBusy, UnknownResource
from ..jobs.cluster.database import SCHEMA_LOCK
from . import events
from .outbox import DELIVERED, FAILED, PENDING, former_names

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS advanced_rest.webhook_deliveries (
    seq bigserial PRIMARY KEY,
    event_id text NOT NULL,
    endpoint text NOT NULL,
    event text NOT NULL,
    job_id text NOT NULL,
    job_type text,
    change bigint,
    body text,
    state text NOT NULL DEFAULT 'Pending',
    attempts integer NOT NULL DEFAULT 0,
    created timestamptz NOT NULL DEFAULT now(),
    next_attempt timestamptz NOT NULL DEFAULT now(),
    last_status integer,
    last_error text,
    delivered_at timestamptz,
    claimed_by text,
    claim_until timestamptz,
    claim bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhook_pending ON advanced_rest.webhook_deliveries (endpoint, job_id, seq)
    WHERE state = 'Pending';
CREATE TABLE IF NOT EXISTS advanced_rest.webhook_states (
    job_id text PRIMARY KEY,
    state text NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);
"""


def _columns(table=""):
    """The columns `_delivery` reads, of `table` (an alias, or none)."""
    prefix = table + "." if table else ""
    times = ("created", "next_attempt", "delivered_at")
    names = ("seq", "event_id", "endpoint", "event", "job_id", "job_type", "change", "body", "state", "attempts",
             "created", "next_attempt", "last_status", "last_error", "delivered_at", "claim", "claimed_by")
    return ", ".join("extract(epoch FROM %s%s)" % (prefix, name) if name in times else prefix + name
                     for name in names)


_COLUMNS = _columns()
# A claim lasts twice its endpoint's timeout (an attempt's deadline; resolving the host name is not cut
# short by it) + this margin; beyond it another replica may send.
CLAIM_MARGIN = 10.0
UNCONFIGURED_AFTER = 24 * 3600  # seconds a pending delivery of an endpoint not configured here is kept (look())
LOOK_EVERY = 0.5  # seconds between two looks for due deliveries (retries fall due without a notification)
KEPT_STATES = 10000


def _delivery(row):
    keys = ("Seq", "EventId", "Endpoint", "Event", "Job", "JobType", "Change", "Body", "State", "Attempts",
            "Created", "NextAttempt", "LastStatus", "LastError", "DeliveredAt", "Claim", "SentBy")
    delivery = dict(zip(keys, row))
    for key in ("Created", "NextAttempt", "DeliveredAt"):
        delivery[key] = float(delivery[key]) if delivery[key] is not None else None
    return delivery


class ClusterOutbox:
    """The same interface as outbox.Outbox, on the cluster's database (`cluster`: its run, transaction,
    wait_change, generation and replica name)."""

    def __init__(self, cluster, endpoints, max_pending, kept, lease_seconds, random_=random.random):
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self._cluster = cluster
        self._max_pending, self._kept, self._lease = max_pending, kept, lease_seconds
        self._random = random_
        self._depth = (0, None)  # (pending, oldest pending's creation) at the last look, cluster-wide
        self.counted_here = False  # whether this replica publishes the cluster-wide gauges now
        self._refused = collections.Counter()  # (endpoint, event) -> refused since the last report
        self._refused_lock = threading.Lock()
        self._names = sorted(self.endpoints)

    def create(self, conn):
        """The outbox's tables (one replica at a time: the jobs' schema lock), the deliveries kept under an
        endpoint's former name (settings.Webhook.former_name) renamed to its name."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(SCHEMA)
        for former, name in sorted(former_names(self.endpoints).items()):
            conn.execute("UPDATE advanced_rest.webhook_deliveries SET endpoint = %s WHERE endpoint = %s",
                         (name, former))

    # ---- events in, inside the move's transaction --------------------------------------------

    def job_changed(self, conn, job, change, replica):
        """A move's job JSON, recorded in the feed as `change`: its deliveries, in the caller's transaction
        (an event refused by a full outbox is kept for `refusals()`)."""
        job_id, state = job.get("ID"), job.get("State")
        found = conn.execute("SELECT state FROM advanced_rest.webhook_states WHERE job_id = %s FOR UPDATE",
                             (job_id,)).fetchone()
        previous = found[0] if found else None
        if previous == state:
            return
        if state == "Deleted":
            conn.execute("DELETE FROM advanced_rest.webhook_states WHERE job_id = %s", (job_id,))
        else:
            conn.execute("INSERT INTO advanced_rest.webhook_states (job_id, state) VALUES (%s, %s) "
                         "ON CONFLICT (job_id) DO UPDATE SET state = EXCLUDED.state, updated = now()",
                         (job_id, state))
        wanted = [(event, endpoint) for event in events.events_for(previous, state)
                  for endpoint in self.endpoints.values() if endpoint.wants(event, job.get("Type"))]
        if not wanted:
            return
        # Exact: moves that record changes are one at a time (the feed's numbering lock, held by the caller).
        pending = conn.execute("SELECT count(*) FROM (SELECT 1 FROM advanced_rest.webhook_deliveries WHERE "
                               "state = 'Pending' AND endpoint = ANY(%s) LIMIT %s) AS bounded",
                               (self._names, self._max_pending)).fetchone()[0]
        for event, endpoint in wanted:
            if pending >= self._max_pending:
                with self._refused_lock:
                    self._refused[(endpoint.name, event)] += 1
                continue
            conn.execute("INSERT INTO advanced_rest.webhook_deliveries (event_id, endpoint, event, job_id, "
                         "job_type, change, body) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                         (events.new_event_id(), endpoint.name, event, job_id, job.get("Type"), change,
                          events.body(event, change, job, replica)))
            pending += 1

    def refusals(self):
        """{(endpoint, event): count} refused since the last call (a move tried again counts again)."""
        with self._refused_lock:
            found = dict(self._refused)
            self._refused.clear()
            return found

    # ---- sending --------------------------------------------------------------------------------

    def take(self, endpoint, wait):
        """Claim the next due delivery to `endpoint` (no earlier one of its job pending), waiting up to
        `wait` s; None if none."""
        claim_seconds = 2 * self.endpoints[endpoint].timeout_seconds + CLAIM_MARGIN
        deadline = time.monotonic() + wait
        generation = self._cluster.generation
        while True:
            row = self._cluster.run(
                "WITH due AS (SELECT d.seq FROM advanced_rest.webhook_deliveries d "
                "WHERE d.state = 'Pending' AND d.endpoint = %s AND d.next_attempt <= now() "
                "AND (d.claim_until IS NULL OR d.claim_until < now()) "
                "AND NOT EXISTS (SELECT 1 FROM advanced_rest.webhook_deliveries e WHERE e.state = 'Pending' "
                "AND e.endpoint = d.endpoint AND e.job_id = d.job_id AND e.seq < d.seq) "
                "ORDER BY d.seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
                "UPDATE advanced_rest.webhook_deliveries w SET claimed_by = %s, claim = w.claim + 1, "
                "claim_until = now() + %s * interval '1 second' FROM due WHERE w.seq = due.seq RETURNING "
                + _columns("w"),
                (endpoint, self._cluster.replica, claim_seconds), fetch="one")
            if row is not None:
                return _delivery(row)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            generation = self._cluster.wait_change(generation, min(remaining, LOOK_EVERY))

    def attempted(self, delivery, status, error):
        """Write the outcome of an attempt, if this replica's claim still holds; the new state (None: the
        claim was lost, another replica has the delivery)."""
        endpoint = self.endpoints.get(delivery["Endpoint"])
        attempts = delivery["Attempts"] + 1
        now = time.time()
        next_attempt = None
        if error is None:
            state = DELIVERED
        elif endpoint is None or events.gives_up(attempts, delivery["Created"], now, endpoint):
            state = FAILED
        else:
            state, next_attempt = PENDING, events.retry_delay(attempts, endpoint, self._random)
        row = self._cluster.run(
            "UPDATE advanced_rest.webhook_deliveries SET state = %s, attempts = %s, last_status = %s, "
            "last_error = %s, claimed_by = NULL, claim_until = NULL, "
            "delivered_at = CASE WHEN %s THEN now() END, "
            "next_attempt = CASE WHEN %s::float8 IS NULL THEN next_attempt "
            "ELSE now() + %s::float8 * interval '1 second' END "
            "WHERE seq = %s AND claim = %s AND state = 'Pending' RETURNING state",
            (state, attempts, status, error, state == DELIVERED, next_attempt, next_attempt, delivery["Seq"],
             delivery["Claim"]), fetch="one")
        if row is None:
            logger.warning("Webhook delivery %s: this replica's claim was lost meanwhile (another replica "
                           "has it); its outcome is not written", delivery["Seq"])
            return None
        return row[0]

    # ---- repair and reading ---------------------------------------------------------------------

    def redeliver(self, seq):
        """Send delivery `seq` again (attempts and age afresh; a new claim token, so that no earlier
        attempt's outcome lands on it). Raises UnknownResource, DeliveryBusy (being sent right now)."""
        row = self._cluster.run(
            "UPDATE advanced_rest.webhook_deliveries SET state = 'Pending', attempts = 0, created = now(), "
            "next_attempt = now(), delivered_at = NULL, claimed_by = NULL, claim_until = NULL, claim = claim + 1 "
            "WHERE seq = %s AND body IS NOT NULL AND (claim_until IS NULL OR claim_until < now()) RETURNING "
            + _COLUMNS, (seq,), fetch="one")
        if row is None:
            busy = self._cluster.run("SELECT 1 FROM advanced_rest.webhook_deliveries WHERE seq = %s AND body IS NOT "
                                     "NULL", (seq,), fetch="one")
            if busy:
                raise DeliveryBusy("Webhook delivery %s is being sent right now" % seq)
            raise UnknownResource("No webhook delivery %s is kept" % seq)
        self._cluster.run("SELECT pg_notify('advanced_rest_jobs', 'webhook')")
        return _delivery(row)

    def list(self, state=None, job=None, since=0, limit=1000):
        conditions, params = ["seq > %s"], [since]
        if state is not None:
            conditions.append("state = %s")
            params.append(state)
        if job is not None:
            conditions.append("job_id = %s")
            params.append(job)
        rows = self._cluster.run("SELECT %s FROM advanced_rest.webhook_deliveries WHERE %s ORDER BY seq LIMIT %%s"
                                 % (_COLUMNS, " AND ".join(conditions)), params + [limit], fetch="all")
        return [_delivery(row) for row in rows]

    def depth(self):
        return self._depth

    # ---- upkeep (each replica, every second) ----------------------------------------------------

    def look(self):
        """Measure the outbox, forget what is beyond the kept history, and decide whether this replica
        publishes the cluster-wide gauges (the live replica of the smallest name: counted once)."""
        row = self._cluster.run(
            "SELECT count(*), extract(epoch FROM min(created)), (SELECT min(id) FROM advanced_rest.replicas "
            "WHERE heartbeat > now() - %s * interval '1 second') FROM advanced_rest.webhook_deliveries "
            "WHERE state = 'Pending' AND endpoint = ANY(%s)", (self._lease, self._names), fetch="one")
        self._depth = (row[0], float(row[1]) if row[1] is not None else None)
        self.counted_here = row[2] == self._cluster.replica
        if self.counted_here:
            # An endpoint no longer configured here (removed, or renamed): its deliveries would wait forever.
            # A day leaves room for a rolling change of configuration, replica by replica.
            self._cluster.run("UPDATE advanced_rest.webhook_deliveries SET state = 'Failed', last_error = "
                              "'endpoint no longer configured' WHERE state = 'Pending' AND NOT endpoint = ANY(%s) "
                              "AND created < now() - %s * interval '1 second'", (self._names, UNCONFIGURED_AFTER))
            self._cluster.run("DELETE FROM advanced_rest.webhook_deliveries WHERE state <> 'Pending' AND seq <= "
                              "(SELECT seq FROM advanced_rest.webhook_deliveries WHERE state <> 'Pending' "
                              "ORDER BY seq DESC OFFSET %s LIMIT 1)", (self._kept,))
            self._cluster.run("DELETE FROM advanced_rest.webhook_states WHERE updated <= (SELECT updated FROM "
                              "advanced_rest.webhook_states ORDER BY updated DESC OFFSET %s LIMIT 1)",
                              (KEPT_STATES,))
