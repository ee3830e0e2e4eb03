"""The cluster's database: connection settings, bounded sessions, one replica's connections and the
notifications it hears, and the errors that become 503 (the schema, the statements and the advisory locks'
numbers are sql.py's). Nothing here knows what a job is."""
import contextlib
import logging
import threading
import time

import psycopg

from ...errors import AdvancedRestError, DatabaseUnavailable
from . import sql

logger = logging.getLogger(__name__)

CHANNEL = "advanced_rest_jobs"
KEPT_CHANGES = 10000
LOCK_WAIT = 1.5  # seconds a statement waits for a lock before it gives up (then retried, or 503)
ACTION_WITHIN = 6.0  # seconds an action keeps trying against locked rows before its 503


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


def session_options(lease_seconds):
    """The `options` of every connection of the plugin: no lock waited for longer than LOCK_WAIT, no
    statement longer than 10 s, and a session left idle inside a transaction (its replica frozen
    mid-move) ended by the server within a quarter of the lease, its locks freed for the others."""
    idle = max(1.0, min(5.0, float(lease_seconds) / 4))
    return "-c lock_timeout=%d -c statement_timeout=10000 -c idle_in_transaction_session_timeout=%d" % (
        LOCK_WAIT * 1000, idle * 1000)


class IdentityInUse(RuntimeError):
    """Another live replica already uses this DatabaseServerIdentifier."""



@contextlib.contextmanager
def unavailable_as_503():
    try:
        yield
    except psycopg.OperationalError as error:
        raise DatabaseUnavailable("The cluster's PostgreSQL cannot be reached (%s)" % type(error).__name__) from error
    except psycopg.Error as error:  # reached, but it refused (privileges, a broken schema, a lock timeout...)
        raise DatabaseUnavailable("The cluster's PostgreSQL refused the plugin's request (%s)"
                                % type(error).__name__) from error
    except Exception as error:
        if type(error).__module__.startswith("psycopg_pool"):  # PoolTimeout: every connection busy or broken
            raise DatabaseUnavailable("No connection to the cluster's PostgreSQL (%s)" % type(error).__name__) from error
        raise


def application_name(replica):
    """How this replica's connections are named in pg_stat_activity."""
    return "advanced-rest/%s" % replica


class Database:
    """One replica's connections to the cluster's PostgreSQL: pooled statements and transactions, moves tried
    again while rows stay locked, and the notifications of every replica's moves (`generation`, bumped at
    each one, and `wait_change`). The jobs (replica.Cluster), their feed, the core jobs of the peers and the
    webhooks' outbox each get it in their constructor.

    `pool`: a psycopg_pool.ConnectionPool of autocommit connections; `connect(application name)`: a new
    autocommit connection of its own (LISTEN, the replica's identity).
    """

    def __init__(self, pool, connect, replica, lease_seconds=30.0):
        self.pool, self.connect = pool, connect
        self.replica = replica
        self.lease = float(lease_seconds)
        self._wake = threading.Condition()
        self._generation = 0  # bumped at each notification: waiters re-read
        self._stop = threading.Event()
        self._thread = None

    @contextlib.contextmanager
    def transaction(self):
        """A pooled connection inside one transaction; the database's errors become 503."""
        with unavailable_as_503():
            with self.pool.connection() as conn:
                with conn.transaction():
                    yield conn

    def run(self, statement, params=None, fetch=None):
        """Run one statement (of sql.py) on a pooled connection (autocommit)."""
        with unavailable_as_503():
            with self.pool.connection() as conn:
                cursor = conn.execute(statement, params)
                if fetch == "one":
                    return cursor.fetchone()
                if fetch == "all":
                    return cursor.fetchall()
                return None

    def moving(self, move, deadline=ACTION_WITHIN):
        """Run `move(conn)` in one transaction, again while rows stay locked (a replica frozen inside a
        transaction holds them until the server ends its session), at most `deadline` seconds."""
        ends = time.monotonic() + deadline
        while True:
            try:
                with self.transaction() as conn:
                    return move(conn)
            except AdvancedRestError as error:
                if not isinstance(error.__cause__, (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled,
                                                    psycopg.errors.DeadlockDetected)) \
                        or time.monotonic() > ends:
                    raise
                time.sleep(0.05)

    # ---- notifications ---------------------------------------------------------------------

    def listen(self):
        """Start hearing the cluster's notifications (a thread of its own, until `stop`)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen, name="advanced-rest-cluster-listen", daemon=True)
        self._thread.start()

    def stop(self):
        """Stop listening; every waiter wakes."""
        self._stop.set()
        self.woken()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def woken(self):
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    def _listen(self):
        while not self._stop.is_set():
            try:
                conn = self.connect(application_name(self.replica) + "/listen")
                with conn:
                    conn.execute(sql.LISTEN % CHANNEL)
                    self.woken()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.woken()
                        self.woken()  # no notification for a while: the loops look anyway
            except Exception as error:
                logger.warning("Listening to PostgreSQL failed (%s); retrying", type(error).__name__)
                self._stop.wait(1.0)

    def wait_change(self, generation, timeout):
        """Wait for a notification after `generation` (at most `timeout` s); the current generation."""
        with self._wake:
            if self._generation == generation:
                self._wake.wait(timeout)
            return self._generation

    @property
    def generation(self):
        return self._generation
