"""Every statement of the cluster (its jobs, change feed, replicas' core jobs, and the webhooks' outbox), named,
and the plugin's schema as numbered migrations.

The schema `advanced_rest` holds the plugin's tables only (never Orthanc's). `migrate` applies, once and one
replica at a time, each migration newer than the version recorded in `advanced_rest.schema_version`.
Migration 1 is the schema of plugin 0.1.0 and of the columns added since by `ADD COLUMN IF NOT EXISTS` at
each start: it builds the whole schema from nothing, and brings a database of any earlier version to it
(then records version 1). A later change of the schema is a new migration at the end, never an edit of one
that was released.

Statements take psycopg's `%s` (or `%(name)s`) parameters. The job states the jobs' statements name come from
jobs/model.py; a migration's text stays as it was released.
"""
from ..model import FINISHED, State

SCHEMA_LOCK = 740074  # pg_advisory_xact_lock key: one replica migrates the schema at a time
SUBMIT_LOCK = SCHEMA_LOCK + 1  # one counted submission (or resubmission) at a time (MaxPendingJobs, MaxPendingBytes)
CHANGES_LOCK = SCHEMA_LOCK + 2  # numbering of changes (see feed.insert_change)
TRIM_LOCK = SCHEMA_LOCK + 3  # one history trim at a time
IDENTITY_LOCK = SCHEMA_LOCK + 4  # pg_try_advisory_lock(IDENTITY_LOCK, hashtext(identifier)): one live replica per name

_FINISHED = "(%s)" % ", ".join("'%s'" % state for state in sorted(FINISHED))  # ('Failure', 'Success')
_PENDING = "'%s'" % State.PENDING

MIGRATIONS = (
    (1, """
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
-- added by later 0.1 and 0.2 versions at each start: a database made by any of them gets what it lacks
ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS token bigint NOT NULL DEFAULT 0;
ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS undo jsonb;
ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS pause_requested boolean NOT NULL DEFAULT false;
-- bytes of the job's request (its body): what AdvancedRest.MaxPendingBytes sums over unfinished rows
ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS size bigint NOT NULL DEFAULT 0;
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
-- the webhooks' outbox (webhooks/cluster.py), made by earlier versions only when webhooks were configured
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
"""),
)
LATEST = MIGRATIONS[-1][0]

# ---- migrations ----------------------------------------------------------------------------------

LOCK_SCHEMA = "SELECT pg_advisory_xact_lock(%d)" % SCHEMA_LOCK
VERSIONED = """
CREATE SCHEMA IF NOT EXISTS advanced_rest;
CREATE TABLE IF NOT EXISTS advanced_rest.schema_version (
    version integer PRIMARY KEY,
    applied timestamptz NOT NULL DEFAULT now()
);
"""
SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM advanced_rest.schema_version"
APPLIED = "INSERT INTO advanced_rest.schema_version (version) VALUES (%s)"


def migrate(conn):
    """Apply, in the caller's transaction, the migrations newer than the database's version, one replica at a
    time; (the version found, the version now)."""
    conn.execute(LOCK_SCHEMA)
    conn.execute(VERSIONED)
    found = conn.execute(SCHEMA_VERSION).fetchone()[0]
    for version, statements in MIGRATIONS:
        if version > found:
            conn.execute(statements)
            conn.execute(APPLIED, (version,))
    return found, max(found, LATEST)


# ---- identity, replicas, notifications ----------------------------------------------------------------

TAKE_IDENTITY = "SELECT pg_try_advisory_lock(%d, hashtext(%%s))" % IDENTITY_LOCK
ALIVE = "SELECT 1"
JOIN = ("INSERT INTO advanced_rest.replicas (id, heartbeat, started) VALUES (%s, now(), now()) "
        "ON CONFLICT (id) DO UPDATE SET heartbeat = now(), started = now()")
LEAVE = "DELETE FROM advanced_rest.replicas WHERE id = %s"
HEARTBEAT = "UPDATE advanced_rest.replicas SET heartbeat = now() WHERE id = %s"
LISTEN = "LISTEN %s"  # the channel: an identifier, not a parameter
NOTIFY = "SELECT pg_notify(%s, %s)"

# ---- jobs ---------------------------------------------------------------------------------------------

SUBMIT = """INSERT INTO advanced_rest.jobs (id, type, priority, state, submitted_by, document, record, payload, size)
            VALUES (%s, %s, %s, {pending}, %s, %s, %s, %s, %s)""".format(pending=_PENDING)
LOCK_SUBMISSIONS = "SELECT pg_advisory_xact_lock(%d)" % SUBMIT_LOCK
HELD = "SELECT count(*), coalesce(sum(size), 0) FROM advanced_rest.jobs WHERE state = ANY(%s)"
DOCUMENT = "SELECT document FROM advanced_rest.jobs WHERE id = %s"
IDS = "SELECT id FROM advanced_rest.jobs ORDER BY seq"
DOCUMENTS = "SELECT document FROM advanced_rest.jobs ORDER BY seq"
SIZE = "SELECT size FROM advanced_rest.jobs WHERE id = %s"
# decisions.Row's fields, then the job's JSON
LOCKED_ROW = """SELECT state, version, owner, token, ran_by IS NOT NULL, undo, pause_requested, document
                FROM advanced_rest.jobs WHERE id = %s FOR UPDATE"""
# A move (decisions.Change) written over the row read as `version`, under its lock: every column written, those
# the move keeps with the values read. 0 rows: never expected under the lock; nothing is written. The `record`
# column (model.record_of the document) is read by no replica of this version: it is written for replicas of
# 0.2.1 and earlier, which claim from it, during a rolling upgrade; a later migration drops it.
WRITE = """UPDATE advanced_rest.jobs SET version = version + 1, state = %(state)s,
               owner = CASE WHEN %(release)s THEN NULL ELSE owner END,
               lease_until = CASE WHEN %(release)s THEN NULL ELSE lease_until END,
               undo = CASE WHEN %(set_undo)s THEN %(undo)s ELSE undo END,
               pause_requested = coalesce(%(pause_requested)s, pause_requested),
               ran_by = CASE WHEN %(set_ran)s THEN %(ran_by)s ELSE ran_by END,
               finished = CASE WHEN %(finished)s THEN now() WHEN %(reset)s THEN NULL ELSE finished END,
               document = %(document)s, record = %(record)s
           WHERE id = %(id)s AND version = %(version)s RETURNING version"""
DELETE = "DELETE FROM advanced_rest.jobs WHERE id = %s AND version = %s"
# The first job free to run (or to be undone), claimed with a new token and a lease.
CLAIM = """UPDATE advanced_rest.jobs SET owner = %s, token = token + 1, version = version + 1,
                  lease_until = now() + %s * interval '1 second'
           WHERE id = (SELECT id FROM advanced_rest.jobs
                       WHERE owner IS NULL AND state NOT IN {finished}
                             AND (state = {pending} OR undo IS NOT NULL)
                       ORDER BY priority DESC, seq FOR UPDATE SKIP LOCKED LIMIT 1)
           RETURNING id, type, document, payload, undo, token, ran_by IS NOT NULL""".format(
    finished=_FINISHED, pending=_PENDING)
# The leases of the claims this replica's workers hold ("id:token"), and only those.
RENEW = """UPDATE advanced_rest.jobs SET lease_until = now() + %s * interval '1 second'
           WHERE owner = %s AND id || ':' || token = ANY(%s) RETURNING id, token"""
_RELEASABLE = """SELECT id, owner FROM advanced_rest.jobs WHERE {condition} AND state NOT IN {finished}
                 ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT 1"""
RELEASABLE_OWN = _RELEASABLE.format(condition="owner = %s", finished=_FINISHED)
RELEASABLE_EXPIRED = _RELEASABLE.format(condition="owner IS NOT NULL AND lease_until < now()", finished=_FINISHED)
LOCK_TRIM = "SELECT pg_advisory_xact_lock(%d)" % TRIM_LOCK
# The oldest finished jobs beyond JobsHistorySize; rows another transaction holds are skipped.
TRIM = """DELETE FROM advanced_rest.jobs WHERE id IN (
              SELECT id FROM advanced_rest.jobs WHERE state IN {finished}
              ORDER BY finished DESC NULLS LAST, seq DESC OFFSET %s FOR UPDATE SKIP LOCKED)""".format(
    finished=_FINISHED)
# A job a single server saved, moved into the cluster (Cluster.migrate).
ADOPT = """INSERT INTO advanced_rest.jobs (id, type, priority, state, submitted_by, ran_by, undo, document, record,
                                           payload, finished, size)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() ELSE NULL END, %s)
           ON CONFLICT (id) DO NOTHING"""

# ---- the reporting role and the gauges (Cluster.gauges) -----------------------------------------------

# Whether the identity lock of replica {name} is held now, by the session {pid} when given. A replica's
# identity session ends with its process (kill -9 included): PostgreSQL frees its locks within milliseconds.
_IDENTITY_HELD = """EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND l.classid = {lock}::integer::oid AND l.objid = hashtext({name})::oid AND l.objsubid = 2{pid})"""
# The reporting role, decided by one statement from one instant of the database: the live replica of the
# smallest identifier, live meaning that its identity lock is held now (a killed replica loses it at once)
# and that it renewed its heartbeat within the lease (a frozen one keeps its session: it loses the role
# once its lease ran out). A replica reports only when the statement proves, with its own identity
# session's pid, that the role is its own: at every instant at most one replica reports the cluster's
# gauges and, while any is live, exactly one, whichever died or froze a moment earlier.
_REPORTING = ("""%(replica)s = (SELECT min(r.id) FROM advanced_rest.replicas r
                   WHERE r.heartbeat > now() - %(lease)s * interval '1 second' AND """
              + _IDENTITY_HELD.format(lock=IDENTITY_LOCK, name="r.id", pid="") + ") AND "
              + _IDENTITY_HELD.format(lock=IDENTITY_LOCK, name="%(replica)s", pid=" AND l.pid = %(pid)s"))
REPORTING = "SELECT " + _REPORTING
# (reporting, type, state, count): the cluster's jobs counted in the same statement as the role is
# decided; one row (type NULL) when this replica does not report or there is no job.
GAUGES = """WITH role AS (SELECT """ + _REPORTING + """ AS held)
    SELECT role.held, counted.type, counted.state, counted.n FROM role LEFT JOIN LATERAL (
        SELECT type, state, count(*) AS n FROM advanced_rest.jobs WHERE role.held GROUP BY type, state
    ) counted ON true"""

# ---- the change feed (feed.py) --------------------------------------------------------------------------

# Numbered under a lock held until the transaction ends: numbers commit in order and with no gap.
LOCK_CHANGES = "SELECT pg_advisory_xact_lock(%d)" % CHANGES_LOCK
INSERT_CHANGE = """INSERT INTO advanced_rest.changes (seq, change)
                   SELECT coalesce(max(seq), 0) + 1, %s FROM advanced_rest.changes RETURNING seq"""
LAST_CHANGE = "SELECT coalesce(max(seq), 0) FROM advanced_rest.changes"
CHANGES_SINCE = "SELECT seq, change FROM advanced_rest.changes WHERE seq > %s ORDER BY seq LIMIT %s"
TRIM_CHANGES = "DELETE FROM advanced_rest.changes WHERE seq < (SELECT max(seq) FROM advanced_rest.changes) - %s"

# ---- the replicas' core jobs (peers.py) -----------------------------------------------------------------

UNPUBLISH_CORE = "DELETE FROM advanced_rest.core_jobs WHERE replica = %s"
PUBLISH_CORE = ("INSERT INTO advanced_rest.core_jobs (replica, id, document) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING")
_PEERS_LIVE = """FROM advanced_rest.core_jobs c JOIN advanced_rest.replicas r ON r.id = c.replica
                 WHERE c.replica <> %s AND r.heartbeat > now() - %s * interval '1 second'"""
PEER_CORE_JOBS = "SELECT c.document " + _PEERS_LIVE + " ORDER BY c.replica, c.document->>'CreationTime'"
PEER_CORE_JOB = "SELECT c.document " + _PEERS_LIVE + " AND c.id = %s"
ASK_CORE_ACTION = ("INSERT INTO advanced_rest.actions (job_id, owner, action, core) VALUES (%s, %s, %s, true) "
                   "RETURNING seq")
CORE_ACTION_DONE = "SELECT status, details FROM advanced_rest.actions WHERE seq = %s AND done"
FORGET_CORE_ACTION = "DELETE FROM advanced_rest.actions WHERE seq = %s"
CORE_ACTIONS_ASKED = "SELECT seq, job_id, action FROM advanced_rest.actions WHERE owner = %s AND core AND NOT done"
CORE_ACTION_ANSWERED = "UPDATE advanced_rest.actions SET done = true, status = %s, details = %s WHERE seq = %s"

# ---- the webhooks' outbox (webhooks/cluster.py) -----------------------------------------------------------

RENAME_ENDPOINT = "UPDATE advanced_rest.webhook_deliveries SET endpoint = %s WHERE endpoint = %s"
WEBHOOK_STATE = "SELECT state FROM advanced_rest.webhook_states WHERE job_id = %s FOR UPDATE"
FORGET_WEBHOOK_STATE = "DELETE FROM advanced_rest.webhook_states WHERE job_id = %s"
SET_WEBHOOK_STATE = ("INSERT INTO advanced_rest.webhook_states (job_id, state) VALUES (%s, %s) "
                     "ON CONFLICT (job_id) DO UPDATE SET state = EXCLUDED.state, updated = now()")
# Deliveries pending to these endpoints, counted up to the bound (MaxPendingDeliveries) only.
PENDING_DELIVERIES = ("SELECT count(*) FROM (SELECT 1 FROM advanced_rest.webhook_deliveries WHERE "
                      "state = 'Pending' AND endpoint = ANY(%s) LIMIT %s) AS bounded")
QUEUE_DELIVERY = ("INSERT INTO advanced_rest.webhook_deliveries (event_id, endpoint, event, job_id, job_type, change, "
                  "body) VALUES (%s, %s, %s, %s, %s, %s, %s)")


def _delivery_columns(table=""):
    """The columns webhooks/cluster.py's `_delivery` reads, of `table` (an alias, or none); times as epochs."""
    prefix = table + "." if table else ""
    times = ("created", "next_attempt", "delivered_at")
    names = ("seq", "event_id", "endpoint", "event", "job_id", "job_type", "change", "body", "state", "attempts",
             "created", "next_attempt", "last_status", "last_error", "delivered_at", "claim", "claimed_by")
    return ", ".join("extract(epoch FROM %s%s)" % (prefix, name) if name in times else prefix + name
                     for name in names)


# The next due delivery to an endpoint (none of its job pending before it), claimed with a new token.
TAKE_DELIVERY = ("WITH due AS (SELECT d.seq FROM advanced_rest.webhook_deliveries d "
                 "WHERE d.state = 'Pending' AND d.endpoint = %s AND d.next_attempt <= now() "
                 "AND (d.claim_until IS NULL OR d.claim_until < now()) "
                 "AND NOT EXISTS (SELECT 1 FROM advanced_rest.webhook_deliveries e WHERE e.state = 'Pending' "
                 "AND e.endpoint = d.endpoint AND e.job_id = d.job_id AND e.seq < d.seq) "
                 "ORDER BY d.seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
                 "UPDATE advanced_rest.webhook_deliveries w SET claimed_by = %s, claim = w.claim + 1, "
                 "claim_until = now() + %s * interval '1 second' FROM due WHERE w.seq = due.seq RETURNING "
                 + _delivery_columns("w"))
# An attempt's outcome, written only while the claim (its token) is still the delivery's.
ATTEMPTED = ("UPDATE advanced_rest.webhook_deliveries SET state = %s, attempts = %s, last_status = %s, "
             "last_error = %s, claimed_by = NULL, claim_until = NULL, "
             "delivered_at = CASE WHEN %s THEN now() END, "
             "next_attempt = CASE WHEN %s::float8 IS NULL THEN next_attempt "
             "ELSE now() + %s::float8 * interval '1 second' END "
             "WHERE seq = %s AND claim = %s AND state = 'Pending' RETURNING state")
REDELIVER = ("UPDATE advanced_rest.webhook_deliveries SET state = 'Pending', attempts = 0, created = now(), "
             "next_attempt = now(), delivered_at = NULL, claimed_by = NULL, claim_until = NULL, claim = claim + 1 "
             "WHERE seq = %s AND body IS NOT NULL AND (claim_until IS NULL OR claim_until < now()) RETURNING "
             + _delivery_columns())
DELIVERY_KEPT = "SELECT 1 FROM advanced_rest.webhook_deliveries WHERE seq = %s AND body IS NOT NULL"
DELIVERIES = ("SELECT " + _delivery_columns() + " FROM advanced_rest.webhook_deliveries "
              "WHERE seq > %(since)s AND (%(state)s::text IS NULL OR state = %(state)s::text) "
              "AND (%(job)s::text IS NULL OR job_id = %(job)s::text) ORDER BY seq LIMIT %(limit)s")
# (pending, oldest pending's creation as an epoch, the live replica of the smallest name: it does the upkeep)
OUTBOX_DEPTH = ("SELECT count(*), extract(epoch FROM min(created)), (SELECT min(id) FROM advanced_rest.replicas "
                "WHERE heartbeat > now() - %s * interval '1 second') FROM advanced_rest.webhook_deliveries "
                "WHERE state = 'Pending' AND endpoint = ANY(%s)")
FAIL_UNCONFIGURED = ("UPDATE advanced_rest.webhook_deliveries SET state = 'Failed', last_error = "
                     "'endpoint no longer configured' WHERE state = 'Pending' AND NOT endpoint = ANY(%s) "
                     "AND created < now() - %s * interval '1 second'")
TRIM_DELIVERIES = ("DELETE FROM advanced_rest.webhook_deliveries WHERE state <> 'Pending' AND seq <= "
                   "(SELECT seq FROM advanced_rest.webhook_deliveries WHERE state <> 'Pending' "
                   "ORDER BY seq DESC OFFSET %s LIMIT 1)")
TRIM_WEBHOOK_STATES = ("DELETE FROM advanced_rest.webhook_states WHERE updated <= (SELECT updated FROM "
                       "advanced_rest.webhook_states ORDER BY updated DESC OFFSET %s LIMIT 1)")
