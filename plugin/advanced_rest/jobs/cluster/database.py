"""The cluster's database: its locks, connection settings, bounded sessions, and the errors that become 503
(the schema and the statements are sql.py's). Nothing here knows what a job is."""
import contextlib

import psycopg

from ...errors import DatabaseUnavailable

SCHEMA_LOCK = 740074  # pg_advisory_xact_lock key: one replica migrates the schema at a time
SUBMIT_LOCK = SCHEMA_LOCK + 1  # one counted submission (or resubmission) at a time (MaxPendingJobs, MaxPendingBytes)
CHANGES_LOCK = SCHEMA_LOCK + 2  # numbering of changes (see feed.insert_change)
TRIM_LOCK = SCHEMA_LOCK + 3  # one history trim at a time
IDENTITY_LOCK = SCHEMA_LOCK + 4  # pg_try_advisory_lock(IDENTITY_LOCK, hashtext(identifier)): one live replica per name
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
