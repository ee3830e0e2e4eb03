"""Real Orthanc servers for integration tests: one `Leg` per support-matrix row, `Server` per process.

A leg knows where its Orthanc, Python plugin and plugin venv live and how to start Orthanc
(on the host for bookworm, in a chroot for trixie and forky). A server is one Orthanc process on free
loopback ports with its own temp storage and log file.
"""
import atexit
import hashlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import requests
import requests.adapters
import urllib3.connectionpool

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_DIR = os.path.join(REPO, "plugin")
PLUGIN_REQUIREMENTS = os.path.join(PLUGIN_DIR, "requirements.txt")
PYTHON_PLUGIN_SO = "/usr/share/orthanc/plugins/libOrthancPython.so"
# orthanc-postgresql's index plugin: 4.0 on bookworm, 5.0 in the forky chroot (symlinks to /usr/lib/orthanc/)
POSTGRESQL_INDEX_SO = "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"
ORTHANC_BIN = "/usr/sbin/Orthanc"
# Written last by scripts/make-venv.sh: "<sha256 of requirements> Python X.Y.Z".
VENV_STAMP = ".advanced-rest-stamp"
PURELIB = 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
REQUEST_TIMEOUT = 60.0


def _requirements_hash():
    with open(PLUGIN_REQUIREMENTS, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _venv_problem(stamp_path, make_hint):
    """Return why the plugin venv whose stamp is at stamp_path cannot be used, or None."""
    try:
        with open(stamp_path) as f:
            stamp = f.read().split()
    except FileNotFoundError:
        return f"plugin venv missing ({os.path.dirname(stamp_path)}): {make_hint}"
    if not stamp or stamp[0] != _requirements_hash():
        return f"plugin venv out of date with plugin/requirements.txt: {make_hint}"
    return None


def _run(argv):
    """Run a short command; return its stdout+stderr stripped."""
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True)
    return done.stdout.strip()



def until(what, condition, timeout=60, every=0.05):
    """`condition()`'s first true value, looked at every `every` s; fails the test after `timeout` s naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "never: %s" % what
        time.sleep(every)

class _OneRequestPerConnection(urllib3.connectionpool.HTTPConnectionPool):
    """A pool that closes each connection once its answer is read, instead of keeping it for the next."""

    def _put_conn(self, conn):
        if conn is not None:
            conn.close()
        super()._put_conn(None)  # the slot stays; the next request opens a new connection


class _FreshConnectionAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {**self.poolmanager.pool_classes_by_scheme,
                                                   "http": _OneRequestPerConnection}


def new_session(auth=None, environment=False):
    """Return the tests' HTTP session: every request on a connection of its own, never sent twice.

    Orthanc closes a keep-alive connection idle for its KeepAliveTimeout (1 s by default). A request
    that a pooled connection carries at that moment fails (`RemoteDisconnected`, reset) although the
    server never read it; resending on such failures cannot tell that case from a server that read
    the request and died. So the tests do not reuse connections: each request opens its own (a
    fraction of a millisecond on loopback, against ~1.5 ms for the round trip) and asks the server to
    close it (`Connection: close`); no request is ever resent (requests' default: no retries), and
    every connection error is a real one: a server that dies still fails its test.

    The session ignores proxy variables and .netrc (`environment` False): the harness talks to its own
    servers, on loopback or its containers' networks; reading the environment again at every request
    took a quarter of the tests' own CPU. The url leg, whose Orthanc may sit behind a proxy, keeps them.
    """
    session = requests.Session()
    session.trust_env = environment
    session.mount("http://", _FreshConnectionAdapter())
    session.headers["Connection"] = "close"
    session.auth = auth
    return session


# Legs run side by side (scripts/run-tests.py), each in a range of ports of its own, below the kernel's
# ephemeral range: a leg's servers can take neither another leg's ports nor a client socket's.
PORT_RANGE = os.environ.get("ADVANCED_REST_PORTS")  # "20000-21999"; unset: any port the kernel gives
_next_port = itertools.count()
_port_lock = threading.Lock()


def free_port():
    """Return a loopback TCP port that was free a moment ago (in $ADVANCED_REST_PORTS when set)."""
    if not PORT_RANGE:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    low, high = map(int, PORT_RANGE.split("-"))
    size = high - low + 1
    with _port_lock:
        # Round the range, so that a port closed a moment ago (its TIME_WAIT) comes back last.
        for _ in range(size):
            port = low + next(_next_port) % size
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no free port in ADVANCED_REST_PORTS={PORT_RANGE}")


class Teardowns:
    """Teardowns that run in the background: Orthanc takes ~2.5 s to stop (its HTTP server, its DICOM
    server, its jobs engine, one after the other, whether the plugin is loaded or not), and a test's
    servers were stopped one test after another, a quarter of a leg's time. A test's teardown hands
    the stop to a thread and the next test starts; `join()` (before a leg's or PostgreSQL's folder
    goes) waits for every one. An error in one is printed, not raised: the test it belongs to is over."""

    _threads = []
    _lock = threading.Lock()

    @classmethod
    def later(cls, action):
        def run():
            try:
                action()
            except Exception as error:  # the test is over; its servers' logs show what went wrong
                print(f"advanced-rest tests: a background teardown failed: {error!r}")
        thread = threading.Thread(target=run, name="teardown", daemon=True)
        with cls._lock:
            cls._threads = [t for t in cls._threads if t.is_alive()] + [thread]
        thread.start()

    @classmethod
    def join(cls):
        while True:
            with cls._lock:
                busy = [t for t in cls._threads if t.is_alive()]
            if not busy:
                return
            for thread in busy:
                thread.join()


class Leg:
    """Where one support-matrix leg's Orthanc runs; `open()` before starting servers."""

    name = ""
    orthanc_bin = ORTHANC_BIN
    python_plugin_so = PYTHON_PLUGIN_SO
    postgresql_index_so = POSTGRESQL_INDEX_SO

    def __init__(self):
        self.work_dir = None      # host path holding this session's servers
        self.entrypoint = None    # plugin/entrypoint.py as Orthanc sees it
        self.site_packages = None  # plugin venv's site-packages as Orthanc sees it
        self.versions = {}        # "orthanc", "python_plugin", "python"

    def __repr__(self):
        return f"<Leg {self.name}>"

    def unavailable_reason(self):
        """Return why this leg cannot run on this machine, or None."""
        raise NotImplementedError

    def open(self):
        """Prepare a session: temp folder, plugin code, venv path."""
        raise NotImplementedError

    def close(self):
        """Delete the session's folder (servers must be stopped; those stopping in the background are
        waited for)."""
        Teardowns.join()
        if self.work_dir and not os.environ.get("ADVANCED_REST_KEEP"):
            shutil.rmtree(self.work_dir, ignore_errors=True)
        self.work_dir = None

    def leg_path(self, host_path):
        """Return host_path as Orthanc on this leg sees it."""
        return host_path

    def orthanc_argv(self, config_host_path):
        """Return the command line that starts Orthanc on config_host_path."""
        return [self.orthanc_bin, self.leg_path(config_host_path)]

    def environment(self):
        """Return the environment Orthanc runs with: minimal, so the host's Python settings don't leak."""
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root" if os.geteuid() == 0 else os.environ.get("HOME", "/tmp"),
            "PYTHONPATH": self.site_packages or "",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def python_version(self):
        """Return e.g. "3.11.2" for the interpreter this leg's Python plugin embeds."""
        raise NotImplementedError

    def summary(self):
        """Return "Orthanc 1.10.1, Python plugin 4.0, Python 3.11.2" once versions are known (and the
        PostgreSQL plugin's and server's after a cluster test)."""
        v = self.versions
        text = (f"Orthanc {v.get('orthanc', '?')}, Python plugin {v.get('python_plugin', '?')}, "
                f"Python {v.get('python', '?')}")
        if "postgresql_plugin" in v:  # once a cluster test ran (cluster.py)
            text += f"; PostgreSQL plugin {v['postgresql_plugin']}, PostgreSQL {v.get('postgresql', '?')}"
        return text


class BookwormLeg(Leg):
    """Debian 12's packages on this machine: Orthanc 1.10.1, Python plugin 4.0, Python 3.11."""

    name = "bookworm"
    python = "/usr/bin/python3"
    venv = os.path.join(REPO, ".venv", "plugin")

    def unavailable_reason(self):
        for path, package in ((self.orthanc_bin, "orthanc"), (self.python_plugin_so, "orthanc-python")):
            if not os.path.exists(path):
                return f"{path} missing: apt-get install {package} (make test does it)"
        return _venv_problem(os.path.join(self.venv, VENV_STAMP), "run make test (or make plugin-venv)")

    def open(self):
        self.work_dir = tempfile.mkdtemp(prefix="advanced-rest-bookworm-")
        self.entrypoint = os.path.join(PLUGIN_DIR, "entrypoint.py")
        self.site_packages = _run([os.path.join(self.venv, "bin", "python"), "-c", PURELIB])

    def python_version(self):
        return _run([self.python, "--version"]).split()[-1]


def _resolve_own_hostname(root):
    """Let the chroot resolve this machine's name without DNS.

    DCMTK's UID generator (the core's) calls gethostid(), which looks the host name up:
    without an /etc/hosts entry each call goes to DNS, and some stall for 5 s. The
    cached chroot may have been built on a machine with another name, so check each time.
    """
    name = socket.gethostname()
    hosts = os.path.join(root, "etc", "hosts")
    try:
        with open(hosts) as f:
            if any(name in line.split()[1:] for line in f if not line.startswith("#")):
                return
    except FileNotFoundError:
        pass
    with open(hosts, "a") as f:
        f.write("127.0.1.1\t%s\n" % name)


class ChrootLeg(Leg):
    """A Debian release in a chroot made by scripts/build-chroot.sh SUITE, its plugin venv inside."""

    suite = ""
    venv = "/opt/advanced-rest/venv"

    def __init__(self):
        super().__init__()
        self.root = os.environ.get(f"ADVANCED_REST_{self.suite.upper()}", f"/var/cache/advanced-rest/{self.suite}")

    def unavailable_reason(self):
        build = f"scripts/build-chroot.sh {self.suite}"
        if not os.path.exists(os.path.join(self.root, self.orthanc_bin.lstrip("/"))):
            try:
                with open(self.root + ".unavailable") as f:
                    return f"chroot could not be built: {f.read().strip()}"
            except FileNotFoundError:
                return f"no chroot at {self.root}: run {build} (make test does it)"
        if os.geteuid() != 0:
            return "chroot needs root"
        return _venv_problem(os.path.join(self.root, self.venv.lstrip("/"), VENV_STAMP),
                             f"run {build} (make test does it)")

    def open(self):
        _resolve_own_hostname(self.root)
        # The plugin changes between runs: a fresh copy per session, beside the servers' storage.
        tmp = os.path.join(self.root, "tmp")
        os.makedirs(tmp, exist_ok=True)
        self.work_dir = tempfile.mkdtemp(prefix="advanced-rest-", dir=tmp)
        plugin_copy = os.path.join(self.work_dir, "plugin")
        shutil.copytree(PLUGIN_DIR, plugin_copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self.entrypoint = self.leg_path(os.path.join(plugin_copy, "entrypoint.py"))
        self.site_packages = _run(["chroot", self.root, os.path.join(self.venv, "bin", "python"), "-c", PURELIB])

    def leg_path(self, host_path):
        rel = os.path.relpath(host_path, self.root)
        if rel.startswith(".."):
            raise ValueError(f"{host_path} is outside the chroot {self.root}")
        return "/" + rel

    def orthanc_argv(self, config_host_path):
        return ["chroot", self.root, self.orthanc_bin, self.leg_path(config_host_path)]

    def python_version(self):
        return _run(["chroot", self.root, "python3", "--version"]).split()[-1]


class TrixieLeg(ChrootLeg):
    """Debian 13 (stable) in a chroot: Orthanc 1.12.7, plugin 5.0, Python 3.13, orthanc-postgresql 5.0."""

    name = suite = "trixie"


class ForkyLeg(ChrootLeg):
    """Debian testing in a chroot: Orthanc 1.13.0, plugin 7.1, Python 3.14."""

    name = suite = "forky"


class DockerLeg(Leg):
    """Containers of the image built from docker/Dockerfile with the docker SDK, on the local base
    made by scripts/docker-base.sh (the forky rootfs: Orthanc 1.13.0, plugin 7.1, Python 3.14);
    ADVANCED_REST_BASE_IMAGE names another base, e.g. orthancteam/orthanc:26.8.1 where a
    registry answers.

    Each server is one container on the host's network, so that ports, loopback-only access and
    DICOM between two servers work as on the other legs; its folder is mounted at the same path.
    """

    name = "docker"
    # One tag per working copy: two checkouts testing at once on one engine build their own images.
    image = os.environ.get("ADVANCED_REST_IMAGE",
                           "advanced-rest:test-" + hashlib.sha256(REPO.encode()).hexdigest()[:10])
    base = os.environ.get("ADVANCED_REST_BASE_IMAGE", "advanced-rest/forky-base:latest")
    entrypoint_in_image = "/opt/advanced-rest/plugin/entrypoint.py"

    def __init__(self):
        super().__init__()
        self.client = None

    @property
    def server_class(self):
        return ContainerServer

    def unavailable_reason(self):
        try:
            import docker
        except ImportError:
            return "the docker Python SDK is not installed (tests/requirements.txt)"
        try:
            self.client = docker.from_env()
            self.client.ping()
        except Exception as error:  # the SDK raises several kinds for an absent engine
            return f"no Docker engine answers: {error}"
        try:
            self.client.images.get(self.base)
        except docker.errors.ImageNotFound:
            return f"no base image {self.base}: run scripts/docker-base.sh (make test does it)"
        return None

    def open(self):
        """Build the image from docker/Dockerfile (cached layers make a rebuild quick)."""
        self.work_dir = tempfile.mkdtemp(prefix="advanced-rest-docker-")
        self.entrypoint = self.entrypoint_in_image
        self.site_packages = None  # the image's PYTHONPATH applies inside the container
        self.client.images.build(path=REPO, dockerfile="docker/Dockerfile", tag=self.image, rm=True,
                                 buildargs={"BASE_IMAGE": self.base})

    def python_version(self):
        out = self.client.containers.run(self.image, ["python3", "--version"], entrypoint="", remove=True)
        return out.decode().split()[-1]


LEGS = {cls.name: cls for cls in (BookwormLeg, TrixieLeg, ForkyLeg, DockerLeg)}


class Http:
    """HTTP helpers on `self.url` with `self.session`; answers are returned unchecked."""

    def request(self, method, path, **kw):
        kw.setdefault("timeout", REQUEST_TIMEOUT)
        return self.session.request(method, self.url + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def jobs_settled(self, timeout=120):
        """Wait until no job (the core's or the plugin's) is Pending or Running; a server shared by
        several tests may still be running what an earlier test submitted. Needs the plugin's filters."""
        deadline = time.monotonic() + timeout
        while True:
            busy = self.get("/jobs", params={"state": "Pending,Running"}).json()
            if not busy or time.monotonic() > deadline:
                assert not busy, f"jobs still Pending or Running after {timeout} s: {busy}"
                return
            time.sleep(0.1)


class StartError(RuntimeError):
    """Orthanc did not answer GET /system in time; the message ends with its log."""


class Server(Http):
    """One Orthanc process on free loopback ports, with temp storage and a log file.

    plugin=True loads the Python plugin with our entrypoint; plugin=False loads no plugin at all
    (the core oracle). config is merged over the defaults (a value of None removes a key);
    args are extra command-line arguments (e.g. "--verbose"). env adds environment variables.
    storage_dir (a host path under leg.work_dir) replaces the server's own storage folder, so that
    several servers can share one (the cluster); the SQLite index stays in the server's folder.
    """

    _serial = itertools.count(1)
    live = []  # started and not yet closed, for the failure report

    def __new__(cls, leg, *args, **kwargs):
        # A leg may run its servers otherwise (the docker leg: containers).
        if cls is Server and hasattr(leg, "server_class"):
            cls = leg.server_class
        return super().__new__(cls)

    def __init__(self, leg, plugin=True, config=None, args=(), env=None, name=None,
                 start=True, timeout=START_TIMEOUT, storage_dir=None):
        self.leg = leg
        self.plugin = plugin
        self.extra_config = dict(config or {})
        self.args = tuple(args)
        self.extra_env = dict(env or {})
        self.serial = next(Server._serial)
        self.name = name or f"{leg.name}-{'plugin' if plugin else 'core'}-{self.serial}"
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-", dir=leg.work_dir)
        self.index_dir = os.path.join(self.dir, "storage")
        self.storage_dir = storage_dir or self.index_dir
        self.config_path = os.path.join(self.dir, "orthanc.json")
        self.log_path = os.path.join(self.dir, "orthanc.log")
        self.timeout = timeout
        self.http_port = None
        self.dicom_port = None
        self.process = None
        self._terminating = False
        self.session = new_session()
        users = self.extra_config.get("RegisteredUsers") or {}
        if self.extra_config.get("AuthenticationEnabled") and users:
            self.session.auth = next(iter(users.items()))  # the first registered user
        Server.live.append(self)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def add_lua(self, script, name="filter.lua"):
        """Have Orthanc load the Lua `script` (a site's IncomingHttpRequestFilter, say) when it starts next."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(script)
        self.extra_config["LuaScripts"] = list(self.extra_config.get("LuaScripts", ())) + [self.leg.leg_path(path)]

    def __repr__(self):
        return f"<Server {self.name} {self.url if self.http_port else '(not started)'}>"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def aet(self):
        return self.config().get("DicomAet", "ORTHANC")

    def config(self):
        """Return the configuration this server runs with (leg paths)."""
        config = {
            "Name": self.name,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomServerEnabled": True,
            "StorageDirectory": self.leg.leg_path(self.storage_dir),
            "IndexDirectory": self.leg.leg_path(self.index_dir),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpDescribeErrors": True,
            "Plugins": [self.leg.python_plugin_so] if self.plugin else [],
        }
        if self.plugin:
            config["PythonScript"] = self.leg.entrypoint
            # As deployed (orthanc.json, docker/): the GIL is released during calls into
            # Orthanc where the Python plugin can (4.3+); older ones ignore the option.
            config["Python"] = {"AllowThreads": True}
        config.update(self.extra_config)
        return with_loopback_user({k: v for k, v in config.items() if v is not None})

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self):
        """Start Orthanc and wait until GET /system answers. Raises StartError with the log."""
        if self.running():
            return self
        keep_ports = self.http_port is not None
        for attempt in range(3):
            if not keep_ports or attempt > 0:
                self.http_port, self.dicom_port = free_port(), free_port()
            with open(self.config_path, "w") as f:
                json.dump(self.config(), f, indent=2)
            log_start = self._log_size()
            with open(self.log_path, "a") as log:
                log.write(f"==== advanced-rest tests: starting {self.name} on {self.url} "
                          f"(DICOM {self.dicom_port}): {' '.join(self._argv())}\n")
                log.flush()
                self._terminating = False
                self.process = subprocess.Popen(
                    self._argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env={**self.leg.environment(), **self.extra_env}, start_new_session=True)
            if self._wait_ready():
                return self
            # Another process may have taken a port between free_port() and Orthanc's bind.
            if self.process.poll() is not None and "already in use" in self.log_text(log_start):
                continue
            break
        exited = self.process.poll()
        self.kill()
        why = (f"exited with code {exited} before answering GET /system" if exited is not None
               else f"did not answer GET /system within {self.timeout:.0f} s")
        raise StartError(f"Orthanc {self.name} {why}; log {self.log_path}:\n{self.log_text()}")

    def _argv(self):
        return self.leg.orthanc_argv(self.config_path) + list(self.args)

    def _wait_ready(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if not self.running():
                return False
            try:
                if self.session.get(self.url + "/system", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        """SIGTERM, wait for a clean exit, SIGKILL if it does not come. Returns the exit code."""
        if self.running():
            self.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._append_log(f"==== advanced-rest tests: no exit {STOP_TIMEOUT:.0f} s after SIGTERM, SIGKILL\n")
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else None

    def terminate(self):
        """Send SIGTERM without waiting; Orthanc takes ~3 s to stop, so stop several at once."""
        if self.running() and not self._terminating:
            self._terminating = True
            self.process.send_signal(signal.SIGTERM)

    def kill(self):
        """SIGKILL (a crash: no clean shutdown). Returns the exit code."""
        if self.running():
            self.process.kill()
            self.process.wait()
        return self.process.returncode if self.process else None

    def restart(self, timeout=None):
        """Stop (if running) and start again on the same storage (same ports when still free)."""
        self.stop()
        if timeout is not None:
            self.timeout = timeout
        return self.start()

    def close(self):
        """Stop for good; the folder goes with the leg's session folder."""
        self.stop()
        self.session.close()
        if self in Server.live:
            Server.live.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- log -------------------------------------------------------------------------------

    def log_text(self, start=0):
        """Return Orthanc's stdout+stderr (all starts of this server), from byte offset start."""
        return read_log(self.log_path, start)

    def _log_size(self):
        return log_size(self.log_path)

    def _append_log(self, text):
        with open(self.log_path, "a") as f:
            f.write(text)


def with_loopback_user(config):
    """`config` with AdvancedRest.LoopbackUser the first registered user when authentication is on (as a site
    sets it for the plugin's background work), unless the test chose."""
    users = config.get("RegisteredUsers") or {}
    if config.get("PythonScript") and config.get("AuthenticationEnabled") and users:
        section = dict(config.get("AdvancedRest") or {})
        section.setdefault("LoopbackUser", next(iter(users)))
        config = dict(config, AdvancedRest=section)
    return config


def read_log(path, start=0):
    """A log file's text from byte offset `start` ("" when it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def log_size(path):
    """A log file's size in bytes (0 when it does not exist yet)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


@atexit.register
def _kill_leftovers():
    # Fixtures stop their servers; this covers an interpreter that exits without teardown.
    for server in list(Server.live):
        server.kill()


def probe_versions(leg):
    """Fill leg.versions from a throw-away server with the bare Python plugin (no script).

    Independent of our plugin, so versions print even when it fails to load.
    """
    with Server(leg, plugin=True, config={"PythonScript": None}, name=f"{leg.name}-probe") as server:
        system = server.get("/system").json()
        python = server.get("/plugins/python")
        leg.versions = {
            "orthanc": system.get("Version", "?"),
            "python_plugin": python.json().get("Version", "?") if python.ok else f"? (HTTP {python.status_code})",
            "python": leg.python_version(),
        }
    return leg.versions


class UrlLeg(Leg):
    """An Orthanc with the plugin that the user already runs: `--legs url=http://host:8042`.

    Credentials from the URL (http://user:password@host) or ADVANCED_REST_URL_USER and
    ADVANCED_REST_URL_PASSWORD. Only tests that need no server of their own run; the patients
    the session creates are deleted at its end.
    """

    name = "url"

    def __init__(self, url):
        super().__init__()
        parsed = urllib.parse.urlsplit(url)
        self.auth = None
        user = parsed.username or os.environ.get("ADVANCED_REST_URL_USER")
        if user:
            self.auth = (urllib.parse.unquote(user),
                         urllib.parse.unquote(parsed.password or os.environ.get("ADVANCED_REST_URL_PASSWORD", "")))
        netloc = parsed.hostname + (":%d" % parsed.port if parsed.port else "")
        self.url = urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path.rstrip("/"), "", ""))
        self.server = RemoteServer(self)
        self._patients_before = set()

    def unavailable_reason(self):
        try:
            answer = self.server.get("/system")
        except requests.RequestException as error:
            return f"{self.url} does not answer: {error}"
        if answer.status_code != 200:
            return f"GET {self.url}/system answered {answer.status_code} (credentials?)"
        if self.server.get("/advanced-rest/system").status_code != 200:
            return f"{self.url} answers, but not the advanced-rest plugin's /advanced-rest/system"
        return None

    def open(self):
        self.work_dir = tempfile.mkdtemp(prefix="advanced-rest-url-")
        self._patients_before = set(self.server.get("/patients").json())
        system = self.server.get("/system").json()
        ours = self.server.get("/advanced-rest/system").json()
        self.versions = {"orthanc": system.get("Version", "?"), "python_plugin": ours.get("PythonPlugin", "?"),
                         "python": ours.get("Python", "?")}

    def close(self):
        """Delete the patients this session created (those absent when it opened)."""
        try:
            for patient in set(self.server.get("/patients").json()) - self._patients_before:
                self.server.delete("/patients/%s" % patient)
        finally:
            super().close()

    def summary(self):
        return super().summary() + f" at {self.url}"


class RemoteServer(Http):
    """The `plugin` fixture on the url leg: the same HTTP helpers as Server, on the given Orthanc."""

    def __init__(self, leg):
        self.leg = leg
        self.url = leg.url
        self.session = new_session(leg.auth, environment=True)

    @property
    def aet(self):
        return self.get("/system").json().get("DicomAet", "ORTHANC")

    @property
    def dicom_port(self):
        return self.get("/system").json().get("DicomPort")

    def log_text(self, start=0):
        return ""


class ContainerServer(Server):
    """A Server whose Orthanc runs in a container of the docker leg's image (docker SDK).

    On the host's network by default; with `network` (a docker SDK Network, set before start():
    the cluster) on that network instead, its ports published on loopback.
    """

    container = None
    network = None
    _names = itertools.count(1)

    # The image's own configuration file for the plugin (docker/advanced-rest.json, copied to
    # /etc/orthanc/ by the Dockerfile): the test's settings are merged into it.
    IMAGE_FILE = "/etc/orthanc/advanced-rest.json"
    USERS = {"advanced-rest-tests": "advanced-rest-tests"}

    def config(self):
        config = super().config()
        # As deployed: authentication on, unless the test chooses.
        if "AuthenticationEnabled" not in self.extra_config:
            config.update(AuthenticationEnabled=True, RegisteredUsers=dict(self.USERS))
        # On a network of its own the tests come through docker's port forwarding, not loopback
        # (published on the host's loopback only).
        if self.network is not None and "RemoteAccessAllowed" not in self.extra_config:
            config["RemoteAccessAllowed"] = True
        return with_loopback_user(config)

    def _config_files(self):
        """(the image's plugin file with the test's settings merged in, everything else)."""
        with open(os.path.join(REPO, "docker", "advanced-rest.json")) as f:
            image_file = json.load(f)
        rest = self.config()
        for key, value in list(image_file.items()):
            if key in rest:
                ours = rest.pop(key)
                image_file[key] = {**value, **ours} if isinstance(value, dict) and isinstance(ours, dict) else ours
        if not self.plugin:
            image_file.pop("PythonScript", None)
        return image_file, rest

    def start(self):
        if self.running():
            return self
        if self.http_port is None:
            self.http_port, self.dicom_port = free_port(), free_port()
        image_file, rest = self._config_files()
        plugin_path = os.path.join(self.dir, "advanced-rest.json")
        with open(self.config_path, "w") as f:
            json.dump(rest, f, indent=2)
        with open(plugin_path, "w") as f:
            json.dump(image_file, f, indent=2)
        users = rest.get("RegisteredUsers") or {}
        if rest.get("AuthenticationEnabled") and users:
            self.session.auth = next(iter(users.items()))  # waiting for an authenticated /system
        self._append_log(f"==== advanced-rest tests: starting {self.name} on {self.url} in {self.leg.image}\n")
        volumes = {self.dir: {"bind": self.dir, "mode": "rw"},
                   self.config_path: {"bind": "/etc/orthanc/orthanc.json", "mode": "ro"},
                   plugin_path: {"bind": self.IMAGE_FILE, "mode": "ro"}}
        if not os.path.abspath(self.storage_dir).startswith(self.dir + os.sep):
            volumes[self.storage_dir] = {"bind": self.storage_dir, "mode": "rw"}  # shared (the cluster)
        if self.network is None:
            where = {"network_mode": "host"}
        else:
            where = {"network": self.network.name,
                     "ports": {f"{port}/tcp": ("127.0.0.1", port) for port in (self.http_port, self.dicom_port)}}
        # Orthanc reads the image's folder, as deployed; the test's files replace the base's
        # orthanc.json and the image's advanced-rest.json (Orthanc refuses a key in two files).
        self.container = self.leg.client.containers.run(
            self.leg.image, [self.leg.orthanc_bin, "/etc/orthanc/"] + list(self.args), detach=True,
            name="advanced-rest-test-%d-%d" % (os.getpid(), next(self._names)), volumes=volumes, **where)
        threading.Thread(target=self._follow_log, args=(self.container,), daemon=True).start()
        if self._wait_ready():
            return self
        self.kill()
        raise StartError(f"Orthanc {self.name} did not answer GET /system in its container; log "
                         f"{self.log_path}:\n{self.log_text()}")

    def _follow_log(self, container):
        with open(self.log_path, "ab") as log:
            for chunk in container.logs(stream=True, follow=True):
                log.write(chunk)
                log.flush()

    def running(self):
        if self.container is None:
            return False
        try:
            self.container.reload()
        except Exception:
            return False
        return self.container.status in ("created", "running")

    def _finish(self):
        code = self.container.wait(timeout=int(STOP_TIMEOUT) + 10).get("StatusCode")
        self.container.remove(force=True)
        self.container = None
        return code

    def stop(self):
        if self.container is None:
            return None
        self.container.stop(timeout=int(STOP_TIMEOUT))  # SIGTERM, then SIGKILL after the timeout
        return self._finish()

    def terminate(self):
        if self.running():
            self.container.kill(signal="SIGTERM")

    def kill(self):
        if self.container is None:
            return None
        if self.running():
            self.container.kill()
        return self._finish()
