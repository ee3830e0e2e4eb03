"""A throw-away PostgreSQL server for the cluster tests: Debian's server binaries, started by the tests.

    postgres            session fixture, PostgresServer: initdb in a temp folder, on a free loopback
                        port, stopped and deleted at the session's end; skipped (with the reason)
                        when the server binaries are missing
    postgres_database   function fixture, Database: a fresh database with its own password user,
                        dropped at teardown

The server runs as user postgres when the tests run as root (PostgreSQL refuses root), else as the
current user. Local socket connections are trusted (the tests' superuser `postgres`); TCP
connections need a password (scram-sha-256), as Orthanc's PostgreSQL plugin and psycopg use them.
"""
import atexit
import glob
import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass

import pytest

from servers import Teardowns, free_port, log_size, read_log

PG_ROOT = "/usr/lib/postgresql"  # Debian: /usr/lib/postgresql/<major>/bin
SUPERUSER = "postgres"
START_TIMEOUT = 60
# A server for tests: durability off (it is deleted at the end); connections for several replicas'
# index ("IndexConnectionsCount", 1 by default in 4.0 and 5.0, often raised) and the plugin's pools.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
}


def find_bin_dir():
    """Return the newest /usr/lib/postgresql/<major>/bin holding initdb, pg_ctl and postgres, or None."""
    found = []
    for bin_dir in glob.glob(os.path.join(PG_ROOT, "*", "bin")):
        major = os.path.basename(os.path.dirname(bin_dir))
        if major.isdigit() and all(os.access(os.path.join(bin_dir, b), os.X_OK)
                                   for b in ("initdb", "pg_ctl", "postgres", "psql")):
            found.append((int(major), bin_dir))
    return max(found)[1] if found else None


def unavailable_reason():
    """Return why no PostgreSQL server can be started here, or None."""
    if find_bin_dir() is None:
        return (f"PostgreSQL server binaries missing ({PG_ROOT}/<major>/bin/initdb, pg_ctl, postgres, psql): "
                "apt-get install postgresql (make test does it)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "no system user postgres to run the server as (the postgresql package creates it)"
    return None


class PostgresError(RuntimeError):
    """A PostgreSQL command failed; the message holds its output (and the server log when it started)."""


@dataclass(frozen=True)
class Database:
    """One database of the tests' server, owned by a password user of its own."""

    server: "PostgresServer"
    name: str
    user: str
    password: str

    @property
    def host(self):
        return "127.0.0.1"

    @property
    def port(self):
        return self.server.port

    @property
    def conninfo(self):
        """Return a libpq connection string (TCP with the password, as Orthanc connects)."""
        return (f"host={self.host} port={self.port} dbname={self.name} user={self.user} "
                f"password={self.password}")

    def orthanc_config(self, **overrides):
        """Return Orthanc's `PostgreSQL` section for this database (index only, no lock)."""
        section = {"EnableIndex": True, "EnableStorage": False, "Host": self.host, "Port": self.port,
                   "Database": self.name, "Username": self.user, "Password": self.password,
                   "Lock": False, "EnableSsl": False}
        section.update(overrides)
        return section

    def connect(self, autocommit=True, **kw):
        """Return a psycopg connection as the database's user (close it, or use `with`)."""
        import psycopg  # tests/requirements.txt; imported here so that other tests never need it
        return psycopg.connect(self.conninfo, autocommit=autocommit, **kw)

    def query(self, sql, params=None):
        """Run one statement as the database's user; return its rows (list of tuples), [] if none."""
        with self.connect() as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def psql(self, sql):
        """Run SQL with psql as the superuser in this database; return its unaligned output."""
        return self.server.psql(sql, dbname=self.name)


class PostgresServer:
    """One PostgreSQL server in a temp folder (data, socket, log), on a free loopback port."""

    _names = itertools.count(1)
    live = []

    def __init__(self, bin_dir=None):
        self.bin_dir = bin_dir or find_bin_dir()
        self.dir = tempfile.mkdtemp(prefix="advanced-rest-postgres-")
        self.data_dir = os.path.join(self.dir, "data")
        self.socket_dir = self.dir
        self.log_path = os.path.join(self.dir, "postgresql.log")
        self.port = None
        self.version = None
        self.databases = []
        self._run_as = SUPERUSER if os.geteuid() == 0 else None
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.dir, 0o700)

    def __repr__(self):
        return f"<PostgresServer {self.version or '?'} 127.0.0.1:{self.port}>"

    def _bin(self, name):
        return os.path.join(self.bin_dir, name)

    def _as_owner(self, argv):
        return ["runuser", "-u", self._run_as, "--"] + argv if self._run_as else argv

    def _run(self, argv, what):
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=self._environment(), cwd=self.dir)
        if done.returncode != 0:
            raise PostgresError(f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{done.stdout}")
        return done.stdout

    def _environment(self):
        # cwd is self.dir: user postgres may not enter the directory the tests run in.
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "PGTZ": "UTC"}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self):
        """initdb (once), then start on a free port; returns self. Raises PostgresError with the log."""
        if not os.path.exists(os.path.join(self.data_dir, "PG_VERSION")):
            self._run(self._as_owner([self._bin("initdb"), "-D", self.data_dir, "-U", SUPERUSER,
                                      "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
                                      "--auth-local=trust", "--auth-host=scram-sha-256"]), "initdb")
        if self not in PostgresServer.live:
            PostgresServer.live.append(self)
        keep_port = self.port is not None  # started again (an outage test): clients reconnect to the same port
        for attempt in range(3):
            if not keep_port or attempt > 0:
                self.port = free_port()
            settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.socket_dir}'"}
            with open(os.path.join(self.data_dir, "postgresql.auto.conf"), "w") as f:
                f.write("".join(f"{k} = {v}\n" for k, v in settings.items()))
            log_start = self._log_size()
            try:
                self._run(self._as_owner([self._bin("pg_ctl"), "start", "-D", self.data_dir, "-l", self.log_path,
                                          "-w", "-t", str(START_TIMEOUT)]), "pg_ctl start")
                break
            except PostgresError as error:
                # Another process may have taken the port between free_port() and the bind.
                if attempt < 2 and "already in use" in self.log_text(log_start):
                    continue
                raise PostgresError(f"{error}\nlog {self.log_path}:\n{self.log_text(log_start)}") from None
        self.version = self.psql("SHOW server_version").strip()
        return self

    def stop(self, mode="immediate"):
        """Stop at once (immediate: nothing here needs to survive; "fast" as an administrator would);
        the server is down when this returns, or this raises.

        A shutdown, fast or immediate, waits for the children that answer "shutting down" to the
        connections opened meanwhile, each until its client sends a startup packet or
        authentication_timeout (60 s) ends: a replica frozen or starved mid-connect holds it (seen in
        make test's cluster history: the start after a stop found postmaster.pid held). Those
        children have nothing to lose: when pg_ctl's wait ends, they are killed."""
        pid_file = os.path.join(self.data_dir, "postmaster.pid")
        for again, attempt in enumerate((mode, "immediate")):
            if self.port is None or not os.path.exists(pid_file):
                return
            if again:
                for child in self.children():
                    try:
                        os.kill(child, signal.SIGKILL)
                    except OSError:
                        pass  # gone meanwhile
            done = subprocess.run(self._as_owner([self._bin("pg_ctl"), "stop", "-D", self.data_dir, "-m", attempt,
                                                  "-w", "-t", "20"]),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=self._environment(), cwd=self.dir)
            if done.returncode == 0:
                return
        if os.path.exists(pid_file):
            raise PostgresError(f"pg_ctl stop failed (exit {done.returncode}): {done.stdout}")

    def children(self):
        """{pid: title} of the postmaster's child processes ("postgres: checkpointer", ...); {} when down."""
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                postmaster = int(f.readline())
        except (OSError, ValueError):
            return {}
        found = {}
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                if parent == postmaster:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except (OSError, ValueError, IndexError):
                pass  # gone meanwhile
        return found

    def close(self):
        """Stop and delete the folder (kept with ADVANCED_REST_KEEP=1), once the clusters' teardowns
        running in the background (their databases' drops) are over."""
        Teardowns.join()
        self.stop()
        if self in PostgresServer.live:
            PostgresServer.live.remove(self)
        if not os.environ.get("ADVANCED_REST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- SQL ---------------------------------------------------------------------------------

    def psql(self, sql, dbname="postgres"):
        """Run SQL with psql as the superuser (trusted local socket); return its unaligned output.

        Raises PostgresError on any SQL error (ON_ERROR_STOP)."""
        return self._run([self._bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-h", self.socket_dir, "-p", str(self.port), "-U", SUPERUSER, "-d", dbname,
                          "-c", sql], "psql")

    def create_database(self, prefix="db"):
        """Return a new Database owned by a new password user (names unique in this server)."""
        n = next(self._names)
        name = user = f"{prefix}_{os.getpid()}_{n}"
        password = secrets.token_hex(12)
        self.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        self.psql(f"CREATE DATABASE {name} OWNER {user} ENCODING 'UTF8' TEMPLATE template0")
        database = Database(self, name, user, password)
        self.databases.append(database)
        return database

    def drop_database(self, database):
        """Drop a Database and its user, closing whatever is still connected to it."""
        self.psql(f"DROP DATABASE IF EXISTS {database.name} WITH (FORCE)")
        self.psql(f"DROP ROLE IF EXISTS {database.user}")
        if database in self.databases:
            self.databases.remove(database)

    # -- log ---------------------------------------------------------------------------------

    def log_text(self, start=0):
        """Return the server's log from byte offset start."""
        return read_log(self.log_path, start)

    def _log_size(self):
        return log_size(self.log_path)


@atexit.register
def _stop_leftovers():
    # pg_ctl detaches the server: without this, an interpreter that exits without teardown leaves it.
    for server in list(PostgresServer.live):
        server.close()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (PostgresServer); skips when it cannot run here."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    yield server
    server.close()


@pytest.fixture
def postgres_database(postgres):
    """A fresh Database (own user and password) on the session's server, dropped at teardown."""
    database = postgres.create_database()
    yield database
    postgres.drop_database(database)
