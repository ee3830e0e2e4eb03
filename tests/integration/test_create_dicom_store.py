"""Where create-dicom stores its files (README, create-dicom, *Who created an instance*; issue 26).

Where calls into Orthanc keep the GIL (Python plugin before 4.3, or 4.3 and later with Python.AllowThreads
off, as the plugin's self-test finds), a synchronous create-dicom stores through Orthanc's own HTTP server as
the requester: the instance then has the metadata the core's own create-dicom gives it (Origin RestApi, the
requester's HttpUsername, RemoteIP 127.0.0.1, the loopback's). Elsewhere, or when the user may not POST
/instances, or no share of the HTTP threads is free, it stores through the SDK as before (Origin Plugins):
the answer is the same in every case.

The site: authentication on, a Lua filter refusing POST /instances to dave (create-dicom allowed), carol
allowed everything, admin the LoopbackUser.
"""
import base64
import concurrent.futures
import io
import json

import pytest
import requests
from PIL import Image

from servers import REQUEST_TIMEOUT, Server, UrlLeg

ROOT = "/advanced-rest"
USERS = {"admin": "admin-secret", "carol": "carol-secret", "dave": "dave-secret"}
FILTER = """
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  if username == 'dave' and uri == '/instances' and (method == 'POST' or method == 2) then
    return false
  end
  return true
end
"""
KEEPS = "Self-test of the GIL: calls into Orthanc keep it"
RELEASES = "Self-test of the GIL: calls into Orthanc release it"
METADATA = ("Origin", "RemoteIP", "HttpUsername")


def _png(side=64):
    out = io.BytesIO()
    Image.linear_gradient("L").resize((side, side)).convert("RGB").save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _body(name, side=64):
    return json.dumps({"Tags": {"PatientName": name, "StudyDescription": "store"}, "Content": _png(side)})


def _session(user):
    session = requests.Session()
    session.trust_env = False
    session.auth = (user, USERS[user])
    return session


def _start(leg, plugin, config=None):
    server = Server(leg, plugin=plugin, start=False, config=dict({
        "AuthenticationEnabled": True, "RegisteredUsers": dict(USERS),
        "AdvancedRest": {"LoopbackUser": "admin"} if plugin else None}, **(config or {})))
    server.add_lua(FILTER)
    server.session.auth = ("admin", USERS["admin"])
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def _wait_for_log(server, *texts, timeout=30):
    """The first of `texts` found in the server's log (the self-test runs at ORTHANC_STARTED)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        log = server.log_text()
        found = [text for text in texts if text in log]
        if found or time.monotonic() > deadline:
            return found[0] if found else None
        time.sleep(0.05)


def _metadata(session, server, instance):
    """{name: value or None} of the instance's METADATA."""
    found = {}
    for name in METADATA:
        answer = session.get("%s/instances/%s/metadata/%s" % (server.url, instance, name), timeout=REQUEST_TIMEOUT)
        found[name] = answer.text if answer.status_code == 200 else None
    return found


@pytest.fixture(scope="module")
def site(leg):
    """(plugin server, core server, whether the plugin stores through its HTTP server)."""
    if isinstance(leg, UrlLeg):
        pytest.skip("needs servers of its own (their Lua filter and users)")
    plugin = _start(leg, True)
    core = None
    try:
        core = _start(leg, False)
        decision = _wait_for_log(plugin, KEEPS, RELEASES)
        assert decision is not None, "the GIL self-test said nothing"
        yield plugin, core, decision == KEEPS
    finally:
        plugin.close()
        if core is not None:
            core.close()


def _python_plugin(server):
    version = server.session.get(server.url + ROOT + "/system", timeout=REQUEST_TIMEOUT).json()["PythonPlugin"]
    return tuple(int(part) for part in version.split(".")[:2])


def test_the_self_test_finds_the_gil_kept_exactly_before_plugin_4_3(site):
    """The tests' servers set Python.AllowThreads: plugin 4.3 and later release the GIL, older ones cannot."""
    plugin, _, loopback = site
    assert loopback == (_python_plugin(plugin) < (4, 3)), plugin.log_text()[-3000:]


def test_without_allow_threads_the_self_test_finds_the_gil_kept(leg, orthanc_factory):
    """The decision is measured, not read from a version: plugin 4.3+ with AllowThreads off keeps the GIL."""
    server = orthanc_factory(plugin=True, config={"Python": {"AllowThreads": False}})
    assert _wait_for_log(server, KEEPS, RELEASES) == KEEPS, server.log_text()[-3000:]


@pytest.mark.parametrize("path", ["/tools/create-dicom", ROOT + "/tools/create-dicom"], ids=["core-path", "root"])
def test_a_stored_instance_has_the_metadata_the_readme_gives_and_the_cores_answer(site, path):
    plugin, core, loopback = site
    carol = _session("carol")
    ours = carol.post(plugin.url + path, data=_body("Store^Carol"), timeout=REQUEST_TIMEOUT)
    theirs = carol.post(core.url + "/tools/create-dicom", data=_body("Store^Carol"), timeout=REQUEST_TIMEOUT)
    assert ours.status_code == theirs.status_code == 200, ours.text
    assert sorted(ours.json()) == sorted(theirs.json())
    assert ours.json()["Status"] == theirs.json()["Status"] == "Success"
    got = _metadata(carol, plugin, ours.json()["ID"])
    if loopback:  # as the core's own create-dicom: its client was on loopback too here
        assert got == _metadata(carol, core, theirs.json()["ID"]) == \
            {"Origin": "RestApi", "RemoteIP": "127.0.0.1", "HttpUsername": "carol"}
    else:
        assert got == {"Origin": "Plugins", "RemoteIP": None, "HttpUsername": None}
    instance = carol.get(plugin.url + "/instances/%s/simplified-tags" % ours.json()["ID"], timeout=REQUEST_TIMEOUT)
    assert instance.json()["PatientName"] == "Store^Carol"


def test_a_user_refused_post_instances_still_creates_through_the_sdk(site):
    """The core's create-dicom needs no right on POST /instances: neither does the plugin's."""
    plugin, core, _ = site
    dave = _session("dave")
    assert dave.post(plugin.url + "/instances", data=b"not read", timeout=REQUEST_TIMEOUT).status_code in (401, 403)
    theirs = dave.post(core.url + "/tools/create-dicom", data=_body("Store^Dave"), timeout=REQUEST_TIMEOUT)
    assert theirs.status_code == 200, theirs.text
    for path in ("/tools/create-dicom", ROOT + "/tools/create-dicom"):
        ours = dave.post(plugin.url + path, data=_body("Store^Dave"), timeout=REQUEST_TIMEOUT)
        assert ours.status_code == 200, ours.text
        assert sorted(ours.json()) == sorted(theirs.json()) and ours.json()["Status"] == "Success"
        assert _metadata(dave, plugin, ours.json()["ID"]) == {"Origin": "Plugins", "RemoteIP": None,
                                                              "HttpUsername": None}


def test_beyond_the_share_requests_store_through_the_sdk(leg, orthanc_factory):
    """One HTTP thread of four for stores (0.25 of HttpThreadsCount 4): of concurrent requests, those finding
    it taken store through the SDK, and every one succeeds."""
    server = orthanc_factory(plugin=True, config={
        "HttpThreadsCount": 4, "AuthenticationEnabled": True, "RegisteredUsers": dict(USERS),
        "AdvancedRest": {"LoopbackUser": "admin", "LoopbackStoreShare": 0.25}})
    server.session.auth = ("admin", USERS["admin"])
    loopback = _wait_for_log(server, KEEPS, RELEASES) == KEEPS
    body = _body("Store^Share", 256)

    def create(_):
        with _session("carol") as carol:
            answer = carol.post(server.url + "/tools/create-dicom", data=body, timeout=REQUEST_TIMEOUT)
            assert answer.status_code == 200, answer.text
            return answer.json()["ID"]

    origins = set()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        for _ in range(20):  # until both ways were seen (a few rounds on 2 cores), at most 20 rounds of 6
            for instance in pool.map(create, range(6)):
                origins.add(_metadata(server.session, server, instance)["Origin"])
            if not loopback or origins == {"RestApi", "Plugins"}:
                break
    assert origins == ({"RestApi", "Plugins"} if loopback else {"Plugins"})


def test_with_no_share_every_request_stores_through_the_sdk(leg, orthanc_factory):
    server = orthanc_factory(plugin=True, config={"AdvancedRest": {"LoopbackStoreShare": 0}})
    answer = server.session.post(server.url + "/tools/create-dicom", data=_body("Store^Off"), timeout=REQUEST_TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert _metadata(server.session, server, answer.json()["ID"])["Origin"] == "Plugins"
    assert "Self-test of the GIL" not in server.log_text()
