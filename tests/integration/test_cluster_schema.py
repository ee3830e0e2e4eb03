"""The cluster's schema (jobs/cluster/sql.py) on a real PostgreSQL, no Orthanc: migration 1 builds it from
nothing, and brings a database made by an earlier version (whose replicas added columns with `ADD COLUMN IF
NOT EXISTS` at each start) to the very same schema, its rows kept; each migration is applied once, by one
replica at a time."""
import threading

import pytest

from advanced_rest.jobs.cluster import sql

# The schema as plugin 0.1.0 made it (its jobs' tables; the webhooks' outbox only with webhooks configured).
SCHEMA_0_1_0 = """
CREATE SCHEMA IF NOT EXISTS advanced_rest;
CREATE TABLE IF NOT EXISTS advanced_rest.jobs (
    id text PRIMARY KEY, seq bigserial, type text NOT NULL, priority integer NOT NULL, state text NOT NULL,
    owner text, lease_until timestamptz, submitted_by text NOT NULL, ran_by text,
    cancel_requested boolean NOT NULL DEFAULT false, document jsonb NOT NULL, record jsonb NOT NULL,
    payload text, finished timestamptz
);
CREATE INDEX IF NOT EXISTS jobs_claim ON advanced_rest.jobs (priority DESC, seq) WHERE state = 'Pending';
CREATE TABLE IF NOT EXISTS advanced_rest.actions (
    seq bigserial PRIMARY KEY, job_id text NOT NULL, owner text NOT NULL, action text NOT NULL,
    core boolean NOT NULL DEFAULT false, done boolean NOT NULL DEFAULT false, status integer, details text
);
CREATE TABLE IF NOT EXISTS advanced_rest.core_jobs (
    replica text NOT NULL, id text NOT NULL, document jsonb NOT NULL, PRIMARY KEY (replica, id)
);
CREATE TABLE IF NOT EXISTS advanced_rest.changes (seq bigserial PRIMARY KEY, change jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS advanced_rest.replicas (
    id text PRIMARY KEY, heartbeat timestamptz NOT NULL, started timestamptz NOT NULL
);
"""
WEBHOOKS_0_1_0 = """
CREATE TABLE IF NOT EXISTS advanced_rest.webhook_deliveries (
    seq bigserial PRIMARY KEY, event_id text NOT NULL, endpoint text NOT NULL, event text NOT NULL,
    job_id text NOT NULL, job_type text, change bigint, body text, state text NOT NULL DEFAULT 'Pending',
    attempts integer NOT NULL DEFAULT 0, created timestamptz NOT NULL DEFAULT now(),
    next_attempt timestamptz NOT NULL DEFAULT now(), last_status integer, last_error text,
    delivered_at timestamptz, claimed_by text, claim_until timestamptz, claim bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhook_pending ON advanced_rest.webhook_deliveries (endpoint, job_id, seq)
    WHERE state = 'Pending';
CREATE TABLE IF NOT EXISTS advanced_rest.webhook_states (
    job_id text PRIMARY KEY, state text NOT NULL, updated timestamptz NOT NULL DEFAULT now()
);
"""
# What the fencing stage added at each start (the claim token, the version of compare-and-set...), then the
# bounds stage (the size of a job's request).
FENCING = """
ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS token bigint NOT NULL DEFAULT 0;
ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS undo jsonb;
ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS pause_requested boolean NOT NULL DEFAULT false;
"""
SIZES = "ALTER TABLE advanced_rest.jobs ADD COLUMN IF NOT EXISTS size bigint NOT NULL DEFAULT 0;"

EARLIER = {
    "0.1.0": SCHEMA_0_1_0,
    "0.1.0-with-webhooks": SCHEMA_0_1_0 + WEBHOOKS_0_1_0,
    "fenced": SCHEMA_0_1_0 + WEBHOOKS_0_1_0 + FENCING,
    "bounded-unversioned": SCHEMA_0_1_0 + FENCING + SIZES,
}


def _migrate(database):
    with database.connect() as conn:
        with conn.transaction():
            return sql.migrate(conn)


def _shape(database):
    """Every column (type, nullability, default) and index of the schema advanced_rest."""
    columns = database.query(
        "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = 'advanced_rest' ORDER BY table_name, column_name")
    indexes = database.query("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = "
                             "'advanced_rest' ORDER BY tablename, indexname")
    return columns, indexes


@pytest.fixture
def other_database(postgres):
    database = postgres.create_database("schema")
    yield database
    postgres.drop_database(database)


def test_from_nothing_migration_1_builds_the_whole_schema_once(postgres_database):
    assert _migrate(postgres_database) == (0, sql.LATEST)
    assert [version for version, in postgres_database.query("SELECT version FROM advanced_rest.schema_version")] \
        == [version for version, _ in sql.MIGRATIONS]
    tables = {name for name, in postgres_database.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'advanced_rest'")}
    assert tables == {"jobs", "actions", "core_jobs", "changes", "replicas", "webhook_deliveries",
                      "webhook_states", "schema_version"}
    shape = _shape(postgres_database)
    assert _migrate(postgres_database) == (sql.LATEST, sql.LATEST)  # applied once: nothing more
    assert _shape(postgres_database) == shape
    assert len(postgres_database.query("SELECT version FROM advanced_rest.schema_version")) == len(sql.MIGRATIONS)


@pytest.mark.parametrize("earlier", sorted(EARLIER))
def test_a_database_of_an_earlier_version_is_brought_to_the_schema_built_from_nothing(postgres_database,
                                                                                    other_database, earlier):
    postgres_database.query(EARLIER[earlier])
    postgres_database.query(
        "INSERT INTO advanced_rest.jobs (id, type, priority, state, submitted_by, document, record) "
        "VALUES ('kept', 'CreateDicom', 0, 'Success', 'replica-a', '{\"ID\": \"kept\"}', '{}')")
    assert _migrate(postgres_database) == (0, sql.LATEST)
    _migrate(other_database)
    assert _shape(postgres_database) == _shape(other_database)
    assert postgres_database.query("SELECT id, state, version, token, undo, pause_requested, size, document "
                                   "FROM advanced_rest.jobs") == [
        ("kept", "Success", 0, 0, None, False, 0, {"ID": "kept"})]
    assert postgres_database.query("SELECT version FROM advanced_rest.schema_version") == [(1,)]


def test_replicas_starting_at_once_apply_each_migration_once(postgres_database):
    start, found, errors = threading.Barrier(4), [], []

    def replica():
        try:
            start.wait(10)
            found.append(_migrate(postgres_database))
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(found) == [(0, sql.LATEST)] + [(sql.LATEST, sql.LATEST)] * 3
    assert len(postgres_database.query("SELECT version FROM advanced_rest.schema_version")) == len(sql.MIGRATIONS)
