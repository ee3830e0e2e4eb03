"""`make run`'s script (scripts/run-orthanc.sh on orthanc.json) on the Debian legs: Debian 12 on this
machine, Debian 13 and testing in their chroots. Each gets a copy of the repository's files that
`make run` uses, with the leg's plugin venv as .venv/plugin (what `make plugin-venv` builds there),
and orthanc.json on free ports; a user's create-dicom goes through it."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import requests

from servers import PLUGIN_DIR, REPO, ChrootLeg, DockerLeg, UrlLeg, free_port, new_session

START_TIMEOUT = 60


def _repository_copy(leg):
    """A copy of what `make run` needs, in the leg's work dir; returns its host path."""
    copy = os.path.join(leg.work_dir, "make-run")
    os.makedirs(os.path.join(copy, "scripts"))
    shutil.copy(os.path.join(REPO, "scripts", "run-orthanc.sh"), os.path.join(copy, "scripts"))
    shutil.copytree(PLUGIN_DIR, os.path.join(copy, "plugin"), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    with open(os.path.join(REPO, "orthanc.json")) as f:
        config = json.load(f)
    config.update(HttpPort=free_port(), DicomPort=free_port())  # 8042 may be taken here
    with open(os.path.join(copy, "orthanc.json"), "w") as f:
        json.dump(config, f, indent=2)
    os.makedirs(os.path.join(copy, ".venv"))
    venv = leg.venv if isinstance(leg, ChrootLeg) else os.path.join(REPO, ".venv", "plugin")
    os.symlink(venv, os.path.join(copy, ".venv", "plugin"))
    return copy, config["HttpPort"]


@pytest.fixture
def make_run(leg):
    """(url, process, log path) of scripts/run-orthanc.sh started on the leg; stopped at teardown."""
    if isinstance(leg, (DockerLeg, UrlLeg)):
        pytest.skip(f"leg {leg.name}: `make run` runs Orthanc on a Debian host; this leg's Orthanc is not started by it")
    copy, port = _repository_copy(leg)
    script = os.path.join(copy, "scripts", "run-orthanc.sh")
    argv = ["bash", leg.leg_path(script)]
    if isinstance(leg, ChrootLeg):
        argv = ["chroot", leg.root] + argv
    env = {k: v for k, v in leg.environment().items() if k != "PYTHONPATH"}
    log_path = os.path.join(copy, "run.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", process, log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _log(path):
    with open(path, errors="replace") as f:
        return f.read()[-5000:]


def test_make_run_serves_create_dicom_with_the_plugin(make_run):
    url, process, log_path = make_run
    session = new_session()
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert process.poll() is None, f"run-orthanc.sh exited with {process.returncode}:\n{_log(log_path)}"
        try:
            if session.get(url + "/advanced-rest/system", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"no answer from the plugin within {START_TIMEOUT} s:\n{_log(log_path)}"
        time.sleep(0.2)
    answer = session.post(url + "/tools/create-dicom", json={"Tags": {"PatientName": "Make^Run", "Modality": "OT"}},
                          timeout=60)
    assert answer.status_code == 200, answer.text
    instance = answer.json()["ID"]
    tags = session.get(url + "/instances/%s/simplified-tags" % instance, timeout=60).json()
    assert (tags["PatientName"], tags["Modality"]) == ("Make^Run", "OT")
    assert session.get(url + "/instances", timeout=60).json() == [instance]
