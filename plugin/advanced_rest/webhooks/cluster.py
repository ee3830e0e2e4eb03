"""The cluster's outbox, in PostgreSQL: deliveries written by the moves themselves (in their
transactions), claimed one at a time by any replica with a lease and a token (a replica that died or
froze mid-delivery loses it to another; its late outcome changes nothing)."""
import collections
import logging
import random
import threading
import time

from ..errors import DeliveryBusy, UnknownResource
from ..jobs.cluster import sql
from ..jobs.cluster.database import CHANNEL
from ..jobs.model import DELETED
from . import events
from .outbox import DELIVERED, FAILED, PENDING, former_names

logger = logging.getLogger(__name__)

# A claim lasts twice its endpoint's timeout (an attempt's deadline; resolving the host name is not cut
# short by it) + this margin; beyond it another replica may send.
CLAIM_MARGIN = 10.0
UNCONFIGURED_AFTER = 24 * 3600  # seconds a pending delivery of an endpoint not configured here is kept (look())
LOOK_EVERY = 0.5  # seconds between two looks for due deliveries (retries fall due without a notification)
KEPT_STATES = 10000


def _delivery(row):
    """A delivery as the outbox's interface shows it, from the columns of sql._delivery_columns."""
    keys = ("Seq", "EventId", "Endpoint", "Event", "Job", "JobType", "Change", "Body", "State", "Attempts",
            "Created", "NextAttempt", "LastStatus", "LastError", "DeliveredAt", "Claim", "SentBy")
    delivery = dict(zip(keys, row))
    for key in ("Created", "NextAttempt", "DeliveredAt"):
        delivery[key] = float(delivery[key]) if delivery[key] is not None else None
    return delivery


class ClusterOutbox:
    """The same interface as outbox.Outbox, on the cluster's database (`db`, a jobs.cluster.database.Database:
    its run, transaction, wait_change, generation and replica name)."""

    def __init__(self, db, endpoints, max_pending, kept, lease_seconds, random_=random.random):
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self._db = db
        self._max_pending, self._kept, self._lease = max_pending, kept, lease_seconds
        self._random = random_
        self._depth = (0, None)  # (pending, oldest pending's creation) at the last look, cluster-wide
        self.counted_here = False  # whether this replica publishes the cluster-wide gauges now
        self._refused = collections.Counter()  # (endpoint, event) -> refused since the last report
        self._refused_lock = threading.Lock()
        self._names = sorted(self.endpoints)

    def create(self, conn):
        """The deliveries kept under an endpoint's former name (settings.Webhook.former_name) renamed to its name
        (the outbox's tables are made by the cluster's migrations, jobs/cluster/sql.py)."""
        for former, name in sorted(former_names(self.endpoints).items()):
            conn.execute(sql.RENAME_ENDPOINT, (name, former))

    # ---- events in, inside the move's transaction --------------------------------------------

    def job_changed(self, conn, job, change, replica):
        """A move's job JSON, recorded in the feed as `change`: its deliveries, in the caller's transaction
        (an event refused by a full outbox is kept for `refusals()`)."""
        job_id, state = job.get("ID"), events.phase(job)
        found = conn.execute(sql.WEBHOOK_STATE, (job_id,)).fetchone()
        previous = found[0] if found else None
        if previous == state:
            return
        if state == DELETED:
            conn.execute(sql.FORGET_WEBHOOK_STATE, (job_id,))
        else:
            conn.execute(sql.SET_WEBHOOK_STATE, (job_id, state))
        wanted = [(event, endpoint) for event in events.events_for(previous, state)
                  for endpoint in self.endpoints.values() if endpoint.wants(event, job.get("Type"))]
        if not wanted:
            return
        # Exact: moves that record changes are one at a time (the feed's numbering lock, held by the caller).
        pending = conn.execute(sql.PENDING_DELIVERIES, (self._names, self._max_pending)).fetchone()[0]
        for event, endpoint in wanted:
            if pending >= self._max_pending:
                with self._refused_lock:
                    self._refused[(endpoint.name, event)] += 1
                continue
            conn.execute(sql.QUEUE_DELIVERY,
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
        generation = self._db.generation
        while True:
            row = self._db.run(sql.TAKE_DELIVERY, (endpoint, self._db.replica, claim_seconds),
                                    fetch="one")
            if row is not None:
                return _delivery(row)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            generation = self._db.wait_change(generation, min(remaining, LOOK_EVERY))

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
        row = self._db.run(
            sql.ATTEMPTED, (state, attempts, status, error, state == DELIVERED, next_attempt, next_attempt, delivery["Seq"],
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
        row = self._db.run(sql.REDELIVER, (seq,), fetch="one")
        if row is None:
            busy = self._db.run(sql.DELIVERY_KEPT, (seq,), fetch="one")
            if busy:
                raise DeliveryBusy("Webhook delivery %s is being sent right now" % seq)
            raise UnknownResource("No webhook delivery %s is kept" % seq)
        self._db.run(sql.NOTIFY, (CHANNEL, "webhook"))
        return _delivery(row)

    def list(self, state=None, job=None, since=0, limit=1000):
        rows = self._db.run(sql.DELIVERIES, {"since": since, "state": state, "job": job, "limit": limit},
                                 fetch="all")
        return [_delivery(row) for row in rows]

    def depth(self):
        return self._depth

    # ---- upkeep (each replica, every second) ----------------------------------------------------

    def look(self):
        """Measure the outbox, forget what is beyond the kept history, and decide whether this replica
        publishes the cluster-wide gauges (the live replica of the smallest name: counted once)."""
        row = self._db.run(sql.OUTBOX_DEPTH, (self._lease, self._names), fetch="one")
        self._depth = (row[0], float(row[1]) if row[1] is not None else None)
        self.counted_here = row[2] == self._db.replica
        if self.counted_here:
            # An endpoint no longer configured here (removed, or renamed): its deliveries would wait forever.
            # A day leaves room for a rolling change of configuration, replica by replica.
            self._db.run(sql.FAIL_UNCONFIGURED, (self._names, UNCONFIGURED_AFTER))
            self._db.run(sql.TRIM_DELIVERIES, (self._kept,))
            self._db.run(sql.TRIM_WEBHOOK_STATES, (KEPT_STATES,))
