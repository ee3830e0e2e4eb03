"""docker/cluster/docker-compose.yml on the images built here (docker leg): PostgreSQL, two replicas and
nginx; a job submitted through nginx is seen and awaited through nginx and through each replica."""
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time

import pytest
import requests
import yaml

from cluster import debian_image, unavailable_reason
from servers import REPO, DockerLeg, Http, free_port, new_session
from test_jobs import _submit, _wait

COMPOSE_FILE = os.path.join(REPO, "docker", "cluster", "docker-compose.yml")
REPLICAS = ("orthanc-a", "orthanc-b")
UP_TIMEOUT = 600  # seconds for `up`: health checks one service after the other
READY_TIMEOUT = 60
# orthancteam/orthanc derives Orthanc's configuration from ORTHANC__* variables; a name part is
# CamelCased, except these.
NAME_PARTS = {"POSTGRESQL": "PostgreSQL"}


class Endpoint(Http):
    """HTTP helpers on one URL (nginx, or one replica's published port)."""

    def __init__(self, url, auth):
        self.url = url
        self.session = new_session(auth)


def _json_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _orthanc_config(environment, defaults, plugin_file, pg_index_so):
    """Return the orthanc.json that the orthancteam image's entrypoint would make from `environment`,
    for a base without that entrypoint (the local forky rootfs): the base's defaults, the ORTHANC__*
    variables, the PostgreSQL plugin when its section is there; keys of the image's plugin file stay
    there (Orthanc refuses a key in two files)."""
    config = dict(defaults)
    for name, value in environment.items():
        if not name.startswith("ORTHANC__"):
            continue
        path = [NAME_PARTS.get(part) or "".join(word.capitalize() for word in part.split("_"))
                for part in name[len("ORTHANC__"):].split("__")]
        if path[0] in plugin_file:
            continue
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = _json_value(value)
    if "PostgreSQL" in config:
        config["Plugins"] = list(config.get("Plugins", [])) + [pg_index_so]
    return config


class ComposeCluster:
    """One run of the compose file: `compose(...)` runs docker-compose on it."""

    def __init__(self, leg, work_dir):
        self.leg = leg
        self.dir = work_dir
        self.project = f"advanced-rest-compose-{os.getpid()}-{secrets.token_hex(3)}"
        self.files = [COMPOSE_FILE]
        auth = ("advanced-rest-tests", "pw-" + secrets.token_hex(12))
        ports = {name: free_port() for name in ("HTTP_PORT", "ORTHANC_A_PORT", "ORTHANC_B_PORT")}
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "ADVANCED_REST_IMAGE": leg.image, "BASE_IMAGE": leg.base,
            "POSTGRES_IMAGE": debian_image(leg, "postgres"), "NGINX_IMAGE": debian_image(leg, "nginx"),
            "ORTHANC_USER": auth[0], "ORTHANC_PASSWORD": auth[1], "POSTGRES_PASSWORD": "pw-" + secrets.token_hex(12),
            **{name: str(port) for name, port in ports.items()},
        }
        self.front = Endpoint(f"http://127.0.0.1:{ports['HTTP_PORT']}", auth)
        self.replicas = [Endpoint(f"http://127.0.0.1:{ports['ORTHANC_A_PORT']}", auth),
                         Endpoint(f"http://127.0.0.1:{ports['ORTHANC_B_PORT']}", auth)]

    def compose(self, *args, timeout=120):
        argv = ["docker-compose", "--ansi", "never", "-p", self.project]
        for path in self.files:
            argv += ["-f", path]
        done = subprocess.run(argv + list(args), env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed (exit {done.returncode}):\n{done.stdout}")
        return done.stdout

    def adapt_to_base(self):
        """Give the replicas the configuration files that orthancteam's entrypoint would write, when
        the leg's base is not that image (see _orthanc_config): an override file beside the test's."""
        if "orthancteam/" in self.leg.base:
            return
        services = yaml.safe_load(self.compose("config"))["services"]
        client = self.leg.client
        defaults = json.loads(client.containers.run(self.leg.image, ["cat", "/etc/orthanc/orthanc.json"],
                                                    entrypoint="", remove=True))
        plugin_file = json.loads(client.containers.run(self.leg.image, ["cat", "/etc/orthanc/advanced-rest.json"],
                                                       entrypoint="", remove=True))
        override = {"version": "2.4", "services": {}}
        for name in REPLICAS:
            path = os.path.join(self.dir, f"{name}.json")
            with open(path, "w") as f:
                json.dump(_orthanc_config(services[name]["environment"], defaults, plugin_file,
                                          self.leg.postgresql_index_so), f, indent=2)
            override["services"][name] = {"volumes": [f"{path}:/etc/orthanc/orthanc.json:ro"]}
        path = os.path.join(self.dir, "local-base.override.yml")
        with open(path, "w") as f:
            json.dump(override, f, indent=2)  # JSON is YAML
        self.files.append(path)

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if self.front.get("/advanced-rest/system", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"nginx did not answer within {READY_TIMEOUT} s:\n{self.logs()[-20000:]}")

    def logs(self):
        try:
            return self.compose("logs", "--no-color", timeout=60)
        except Exception as error:  # only for reports
            return f"(no logs: {error})"


@pytest.fixture
def compose_cluster(leg):
    """docker/cluster/docker-compose.yml up on the leg's images; down (volumes too) at teardown."""
    if not isinstance(leg, DockerLeg):
        pytest.skip(f"leg {leg.name}: the compose file runs on the docker leg")
    reason = unavailable_reason(leg)
    if reason:
        pytest.skip(f"leg {leg.name}: {reason}")
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    work_dir = tempfile.mkdtemp(prefix="compose-", dir=leg.work_dir)
    run = ComposeCluster(leg, work_dir)
    try:
        run.adapt_to_base()
        try:
            run.compose("up", "-d", "--no-build", timeout=UP_TIMEOUT)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{run.logs()[-20000:]}") from None
        run.wait_ready()
        yield run
    finally:
        with open(os.path.join(work_dir, "compose.log"), "w") as f:
            f.write(run.logs())
        print(f"compose logs: {os.path.join(work_dir, 'compose.log')}")
        run.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=180)


def test_a_job_submitted_through_nginx_is_seen_and_awaited_through_nginx_and_each_replica(compose_cluster):
    front, replicas = compose_cluster.front, compose_cluster.replicas
    job_id = _submit(front, {"Tags": {"PatientName": "Compose^Cluster"}})
    for where in [front] + replicas:
        assert where.get("/jobs/%s" % job_id).status_code == 200, where.url
        assert job_id in where.get("/jobs").json(), where.url
        job = _wait(where, job_id)
        assert job["State"] == "Success" and job["Replica"] in REPLICAS, job
        assert where.get(job["Content"]["Path"]).status_code == 200, where.url  # one index, one storage
    # nginx shares requests out: both replicas answer through it.
    answering = {front.get("/system").json().get("DatabaseServerIdentifier") for _ in range(6)}
    assert answering == set(REPLICAS)
