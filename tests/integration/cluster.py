"""Several Orthanc replicas with the plugin on one PostgreSQL database and one storage folder.

    cluster     function fixture, Cluster: 2 replicas of the current leg ("replica-a", "replica-b"),
                on a fresh database of the `postgres` server; stopped, database dropped, at teardown.
                @pytest.mark.cluster(replicas=3, config={...}, env={...}) changes the defaults;
                config is merged into every replica's configuration (its "PostgreSQL" section
                key by key).

Replicas are Server objects (kill(), start(), get()/post(), logs in failure reports), started one
after the other: the first creates Orthanc's schema in the database. Each has its own
`DatabaseServerIdentifier`; the index is in PostgreSQL ("Lock": false, so that several servers
can open it), the DICOM files in one folder under the leg's work dir (inside the forky chroot).

On the docker leg everything runs in containers on a private docker network that the fixture
makes: PostgreSQL (docker/postgres: Debian's server) and the replicas (the leg's image; kill() is
`docker kill`), the storage folder bind-mounted into each; the tests reach them through ports
published on loopback.
"""
import contextlib
import copy
import itertools
import os
import secrets
import string
import tempfile
import time
from dataclasses import dataclass

import pytest

from postgres import SETTINGS, Database, PostgresError
from servers import REPO, DockerLeg, Server, Teardowns, UrlLeg, free_port

DEFAULT_REPLICAS = 2
# Images from Debian's packages for the docker leg (scripts/docker-postgres.sh imports the base).
DEBIAN_BASE = os.environ.get("ADVANCED_REST_DEBIAN_BASE_IMAGE", "advanced-rest/bookworm-base:latest")


def _host_path(leg, leg_path):
    """Return where leg_path (a path as Orthanc on this leg sees it) is on the host."""
    root = getattr(leg, "root", None)  # the forky chroot
    return os.path.join(root, leg_path.lstrip("/")) if root else leg_path


def unavailable_reason(leg):
    """Return why a cluster cannot run on this leg, or None."""
    if isinstance(leg, UrlLeg):
        return "the url leg runs against a given Orthanc: the cluster tests start servers of their own"
    if isinstance(leg, DockerLeg):
        return _docker_reason(leg)
    if not os.path.exists(_host_path(leg, leg.postgresql_index_so)):
        where = "scripts/build-forky.sh installs it in the chroot" if getattr(leg, "root", None) else \
            "apt-get install orthanc-postgresql"
        return f"{leg.postgresql_index_so} missing on leg {leg.name}: {where} (make test does it)"
    return None


def _merge(base, extra):
    """Return base updated with extra; dicts one level deep (the "PostgreSQL" section) key by key."""
    merged = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


class Cluster:
    """Orthanc replicas with our plugin on one PostgreSQL Database and one storage folder."""

    def __init__(self, leg, database, config=None, env=None, network=None):
        self.leg = leg
        self.network = network  # the docker leg's private network (docker SDK Network), else None
        self.postgres = database  # postgres.Database: conninfo, connect(), query(), psql()
        self.dir = tempfile.mkdtemp(prefix="cluster-", dir=leg.work_dir)
        self.storage_dir = os.path.join(self.dir, "storage")  # host path, shared by the replicas
        os.makedirs(self.storage_dir)
        self.config = dict(config or {})
        self.env = dict(env or {})
        self.replicas = []

    def __repr__(self):
        return f"<Cluster {self.leg.name} {self.replicas} on {self.postgres.name}>"

    def __iter__(self):
        return iter(self.replicas)

    def __len__(self):
        return len(self.replicas)

    def __getitem__(self, index):
        return self.replicas[index]

    @property
    def servers(self):
        """The replicas, for the failure report's logs."""
        return list(self.replicas)

    def replica_config(self, identifier, config=None):
        """Return the configuration of replica `identifier` (merged over Server's defaults)."""
        base = {
            "DatabaseServerIdentifier": identifier,
            "PostgreSQL": self.postgres.orthanc_config(),
            "Plugins": [self.leg.python_plugin_so, self.leg.postgresql_index_so],
        }
        return _merge(_merge(base, self.config), config)

    def add_replica(self, identifier=None, config=None, env=None, start=True, **kw):
        """Return a new replica (started unless start=False), named replica-a, -b... by default."""
        identifier = identifier or f"replica-{string.ascii_lowercase[len(self.replicas)]}"
        server = Server(self.leg, plugin=True, config=self.replica_config(identifier, config),
                        env={**self.env, **(env or {})}, name=f"{self.leg.name}-{identifier}",
                        storage_dir=self.storage_dir, start=False, **kw)
        server.identifier = identifier
        if self.network is not None:
            server.network = self.network
        self.replicas.append(server)  # closed by close() even when its start fails
        if start:
            server.start()
        return server

    def close(self):
        """Stop every replica (SIGTERM to all first: each takes seconds to stop)."""
        for server in self.replicas:
            server.terminate()
        for server in self.replicas:
            server.close()


def _record_versions(leg, cluster):
    """Note the PostgreSQL server's and the orthanc-postgresql plugin's versions in the leg's summary."""
    if "postgresql_plugin" in leg.versions or not cluster.replicas:
        return
    answer = cluster.replicas[0].get("/plugins/postgresql-index")
    leg.versions["postgresql_plugin"] = answer.json().get("Version", "?") if answer.ok \
        else f"? (HTTP {answer.status_code})"
    leg.versions["postgresql"] = cluster.postgres.server.version


# -- the docker leg: PostgreSQL in a container, everything on a private network ---------------

_docker_reasons = {}  # id(leg) -> why its cluster cannot run ("" when it can)


def _docker_reason(leg):
    """Return why the docker leg's cluster cannot run (checked once per leg), or None."""
    if id(leg) not in _docker_reasons:
        import docker
        reason = ""
        try:
            leg.client.images.get(DEBIAN_BASE)
        except docker.errors.ImageNotFound:
            reason = f"no image {DEBIAN_BASE}: run scripts/docker-postgres.sh (make test does it)"
        if not reason:
            try:
                leg.client.containers.run(leg.image, ["test", "-e", leg.postgresql_index_so], entrypoint="",
                                          remove=True)
            except docker.errors.ContainerError:
                reason = (f"{leg.postgresql_index_so} missing in {leg.image} (base {leg.base}; a local base "
                          "imported before the forky chroot had orthanc-postgresql: scripts/docker-base.sh "
                          "imports it again)")
        _docker_reasons[id(leg)] = reason
    return _docker_reasons[id(leg)] or None


_built = set()


def debian_image(leg, name):
    """Return the tag of docker/<name> ("postgres", "nginx") built on DEBIAN_BASE, once per session."""
    tag = f"advanced-rest/{name}:test"
    if tag not in _built:
        leg.client.images.build(path=os.path.join(REPO, "docker", name), tag=tag, rm=True,
                                buildargs={"BASE_IMAGE": DEBIAN_BASE})
        _built.add(tag)
    return tag


@dataclass(frozen=True)
class ContainerDatabase(Database):
    """A Database of PostgresContainer: the tests connect to its loopback port, Orthanc by the network."""

    def orthanc_config(self, **overrides):
        return super().orthanc_config(**{"Host": self.server.network_host, "Port": 5432, **overrides})


class PostgresContainer:
    """PostgreSQL in a container (docker/postgres) on a docker network, published on a loopback port;
    the part of postgres.PostgresServer's interface that the cluster uses."""

    START_TIMEOUT = 60
    _names = itertools.count(1)

    def __init__(self, leg, network):
        self.leg = leg
        self.network = network
        self.network_host = f"advanced-rest-postgres-{os.getpid()}-{next(self._names)}"  # its container's name
        self.container = None
        self.port = None
        self.version = None

    def __repr__(self):
        return f"<PostgresContainer {self.version or '?'} {self.network_host} 127.0.0.1:{self.port}>"

    def start(self):
        """Run the container and wait until it takes TCP connections; returns self. Raises PostgresError."""
        self.port = free_port()
        options = [f"-c{key}={value.strip(chr(39))}" for key, value in SETTINGS.items() if key != "listen_addresses"]
        self.container = self.leg.client.containers.run(
            debian_image(self.leg, "postgres"), ["postgres"] + options, detach=True, name=self.network_host,
            network=self.network.name, ports={"5432/tcp": ("127.0.0.1", self.port)},
            environment={"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": secrets.token_hex(12)})
        deadline = time.monotonic() + self.START_TIMEOUT
        # Over TCP: the first start's set-up runs a server on the socket only.
        while self.container.exec_run(["pg_isready", "-q", "-h", "127.0.0.1"]).exit_code != 0:
            self.container.reload()
            if self.container.status != "running" or time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL container {self.network_host} did not start:\n{self.log_text()}")
            time.sleep(0.2)
        self.version = self.psql("SHOW server_version").strip()
        return self

    def close(self):
        """Remove the container (and its data)."""
        if self.container is not None:
            self.container.remove(force=True, v=True)
            self.container = None

    def psql(self, sql, dbname="postgres"):
        """Run SQL with psql as the superuser in the container; return its unaligned output."""
        done = self.container.exec_run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres",
                                        "-d", dbname, "-c", sql], user="postgres")
        if done.exit_code != 0:
            raise PostgresError(f"psql failed (exit {done.exit_code}): {sql}\n{done.output.decode()}")
        return done.output.decode()

    def create_database(self, prefix="db"):
        """Return a new ContainerDatabase owned by a new password user."""
        name = user = f"{prefix}_{secrets.token_hex(4)}"
        password = secrets.token_hex(12)
        self.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        self.psql(f"CREATE DATABASE {name} OWNER {user} ENCODING 'UTF8' TEMPLATE template0")
        return ContainerDatabase(self, name, user, password)

    def drop_database(self, database):
        """Drop a ContainerDatabase and its user, closing whatever is still connected to it."""
        self.psql(f"DROP DATABASE IF EXISTS {database.name} WITH (FORCE)")
        self.psql(f"DROP ROLE IF EXISTS {database.user}")

    def running(self):
        try:
            self.container.reload()
        except Exception:
            return False
        return self.container.status == "running"

    def log_text(self, start=0):
        return self.container.logs().decode("utf-8", "replace")[start:] if self.container else ""


class _DockerPostgres:
    """The docker leg's PostgreSQL container and its private network, started at the first cluster of
    the session and kept for the others (each cluster has a database of its own, dropped after it);
    started again if it stopped."""

    def __init__(self, leg):
        self.leg = leg
        self.network = None
        self.server = None

    def get(self):
        if self.server is not None and self.server.running():
            return self.network, self.server
        self.close()
        self.network = self.leg.client.networks.create(
            f"advanced-rest-cluster-{os.getpid()}-{secrets.token_hex(3)}", driver="bridge")
        self.server = PostgresContainer(self.leg, self.network).start()
        return self.network, self.server

    def close(self):
        Teardowns.join()  # the clusters' replicas and databases first
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.network is not None:
            self.network.remove()
            self.network = None


@pytest.fixture(scope="session")
def docker_postgres(leg):
    """The docker leg's _DockerPostgres (session-wide: a container started once, not per cluster)."""
    holder = _DockerPostgres(leg)
    yield holder
    holder.close()


@pytest.fixture
def cluster(request, leg):
    """Replicas of the current leg on one fresh database and storage (Cluster); see the module doc."""
    reason = unavailable_reason(leg)
    if reason:
        pytest.skip(f"leg {leg.name}: {reason}")
    marker = request.node.get_closest_marker("cluster")
    options = dict(marker.kwargs) if marker else {}
    count = options.pop("replicas", DEFAULT_REPLICAS)
    with contextlib.ExitStack() as stack:
        if isinstance(leg, DockerLeg):
            network, postgres = request.getfixturevalue("docker_postgres").get()
        else:
            network, postgres = None, request.getfixturevalue("postgres")
        database = postgres.create_database("cluster")
        result = Cluster(leg, database, network=network, **options)
        # At teardown: SIGTERM to the replicas now; their exits, then the database's drop, in the
        # background (Teardowns), so that the next test need not wait for them.
        stack.callback(Teardowns.later, lambda: (result.close(), postgres.drop_database(database)))
        stack.callback(lambda: [server.terminate() for server in result.replicas])
        # One after the other: the first replica creates Orthanc's schema.
        for _ in range(count):
            result.add_replica()
        _record_versions(leg, result)
        yield result
