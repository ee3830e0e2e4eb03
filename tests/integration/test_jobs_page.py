"""The jobs page ({Root}/ui/) in a real browser, on every leg: what a user sees and does there (issue 30).

Debian's chromium, headless, driven by Selenium and chromium-driver (browser.py; skipped with the reason
where they cannot run). The tests read the page through its DOM contract only (`body[data-live]`,
`#message`, `#counts`, `table#jobs tr[data-id]`, `#details`, `#bulk`, `table#deliveries`, `#figures`: see
browser.Page); every assertion is about what the page shows, checked against the REST API where the
server's side matters. Each test leaves a screenshot
per browser in build/test-results/ (jobs-page-<test>-<leg>[-<browser>].png);
`ADVANCED_REST_DOCS_SCREENSHOT=1` also writes the README's docs/jobs-page.png from the test that
makes a few jobs in several states.
"""
import functools
import html
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from browser import RESULTS, ROOT, browser  # noqa: F401 (fixture)
from create_dicom_cases import png_data_uri
from servers import REPO, free_port, until
from webhook_receiver import SECRET, Receiver

# The page's answers, as the contract gives them.
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
APPEARS_WITHIN = 2.0  # seconds from a job's submission by another client to its row on the page
SMALL_PNG = png_data_uri("RGB")
DOCS_SCREENSHOT = os.path.join(REPO, "docs", "jobs-page.png")


# -- jobs through the REST API (another client than the page) ---------------------------------

def _submit(server, images=1, **body):
    """An asynchronous create-dicom of `images` small PNGs (a series: one step per image); its job id."""
    request = dict({"Tags": {"PatientName": "JobsPage^Test"}, "Content": [SMALL_PNG] * images}, **body)
    answer = server.post(ROOT + "/tools/create-dicom", data=json.dumps(dict(request, Asynchronous=True)))
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def _job(server, job_id):
    answer = server.get(ROOT + "/jobs/" + job_id)
    assert answer.status_code == 200, answer.text
    return answer.json()


_until = functools.partial(until, timeout=60, every=0.05)


def _ended(server, job_id, timeout=60):
    answer = server.get(ROOT + "/jobs/%s/wait" % job_id, params={"timeout": timeout}, timeout=timeout + 10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["State"] in ("Success", "Failure"), answer.json()
    return answer.json()


def _paused(server, images=200, **body):
    """A plugin job paused right after its submission (before its first step, or between two)."""
    job_id = _submit(server, images, **body)
    answer = server.post(ROOT + "/jobs/%s/pause" % job_id, data="")
    assert answer.status_code == 200, answer.text
    _until("job %s Paused" % job_id, lambda: _job(server, job_id)["State"] == "Paused")
    return job_id


def _patients_named(server, name):
    found = server.post("/tools/find", data=json.dumps({"Level": "Patient", "Query": {"PatientName": name}}))
    assert found.status_code == 200, found.text
    return found.json()


# -- 1. live: a job of another client appears, moves, is cancelled from the page ----------------

def test_a_job_submitted_elsewhere_appears_within_2_s_and_moves_through_its_states(plugin, browser):
    page = browser(plugin).open()
    page.js("window.__sameDocument = true")  # gone if the page reloads
    submitted = time.monotonic()
    job_id = _submit(plugin, images=200)
    assert plugin.post(ROOT + "/jobs/%s/pause" % job_id, data="").status_code == 200
    page.wait_row(job_id, timeout=max(0.1, APPEARS_WITHIN - (time.monotonic() - submitted)))
    row = page.wait_row(job_id, "Paused")
    assert (row["type"], row["stateText"]) == ("CreateDicom", "Paused")
    assert _job(plugin, job_id)["State"] == "Paused"
    details = page.open_details(job_id)
    assert sorted(details["actions"]) == ["cancel", "resume"]
    assert json.loads(details["json"])["ID"] == job_id
    assert details["creator"] == "Created by " + _job(plugin, job_id)["Content"]["Creator"]
    assert details["creator"].endswith("via=advanced-rest")

    page.act("resume")
    seen = ["Paused"]

    def success():
        state = (page.row(job_id) or {}).get("state")
        if state and state != seen[-1]:
            seen.append(state)
        return state == "Success"
    page.wait(success, "job %s Success on the page" % job_id, timeout=60)
    assert set(seen) <= {"Paused", "Pending", "Running", "Success"}, seen
    assert _job(plugin, job_id)["State"] == "Success"
    assert page.row(job_id)["progress"] == 100
    assert page.js("return window.__sameDocument === true"), "the page was reloaded"
    assert int(page.counts()["Success"]) >= 1


def test_cancel_from_the_page_ends_a_paused_job_in_failure(plugin, browser):
    job_id = _paused(plugin)
    page = browser(plugin).open()
    page.wait_row(job_id, "Paused")
    assert "cancel" in page.open_details(job_id, keyboard=True)["actions"]  # rows are focusable: Enter opens
    page.act("cancel")
    page.wait_row(job_id, "Failure")
    job = _job(plugin, job_id)
    assert (job["State"], job["ErrorCode"]) == ("Failure", 37), job
    page.wait(lambda: page.row(job_id)["error"] == job["ErrorDescription"],
              "the row's error: %s" % job["ErrorDescription"])


def test_a_refused_action_shows_the_servers_answer(plugin, browser):
    jobs = [_submit(plugin) for _ in range(2)]
    for job_id in jobs:
        assert _ended(plugin, job_id)["State"] == "Success"
    refusal = plugin.post(ROOT + "/jobs/%s/resume" % jobs[0], data="")  # what the server answers anyone
    assert refusal.status_code == 400
    page = browser(plugin).open()
    for job_id in jobs:
        page.wait_row(job_id, "Success")
        page.click('table#jobs tbody tr[data-id="%s"] td.select input[type=checkbox]' % job_id)
    page.click('#bulk button[data-action="resume"]')
    message = page.wait(lambda: (page.message() or "").startswith("resume:") and page.message(),
                        "the bulk resume's outcome in #message")
    assert message.startswith("resume: 0 done, 2 refused (400 Bad Request: "), message
    assert refusal.json().get("Details", refusal.json().get("Message")) in message, (message, refusal.text)
    assert [_job(plugin, job_id)["State"] for job_id in jobs] == ["Success", "Success"]


# -- 2. a failing webhook delivery, redelivered from the page ----------------------------------

@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def test_a_failed_webhook_delivery_is_redelivered_from_the_page(orthanc_factory, receiver, browser):
    server = orthanc_factory(config={"AdvancedRest": {"Webhooks": [
        {"Name": "ris", "Url": receiver.url, "Secret": SECRET, "Events": ["JobSuccess"], "MaxAttempts": 1}]}})
    receiver.answers.append(500)  # the first attempt fails, and with MaxAttempts 1 so does the delivery
    job_id = _submit(server)
    assert _ended(server, job_id)["State"] == "Success"
    failed = _until("a failed delivery of the job", lambda: [
        d for d in server.get(ROOT + "/webhooks/deliveries", params={"job": job_id}).json()["Deliveries"]
        if d["State"] == "Failed"])
    delivery = failed[0]
    delivery_id = str(delivery["ID"])  # as the row's data-id

    page = browser(server).open()

    def shown(state):
        row = next((d for d in page.deliveries() or () if d["id"] == delivery_id), None)
        return row if row and row["state"] == state else None
    row = page.wait(lambda: shown("failed"), "delivery %s failed on the page" % delivery_id)
    assert (row["event"], row["job"], row["redeliver"]) == ("JobSuccess", job_id, True), row
    page.click('table#deliveries tbody tr[data-id="%s"] button[data-action="redeliver"]' % delivery_id)
    row = page.wait(lambda: shown("delivered"), "delivery %s delivered on the page" % delivery_id)
    assert row["attempts"] == "1", row
    received = [item for item in receiver.received if item["id"] == delivery["EventId"]]
    assert [item["status"] for item in received] == [500, 200], received
    assert all(item["verified"] for item in received)
    listed = server.get(ROOT + "/webhooks/deliveries", params={"job": job_id}).json()["Deliveries"]
    assert [(d["State"], d["Attempts"]) for d in listed if d["ID"] == delivery["ID"]] == [("Delivered", 1)]
    # The test event, to the endpoint chosen in the page.
    assert page.js("return document.getElementById('webhook-endpoint').value") == "ris"
    page.click("button#webhook-test")
    message = page.wait(lambda: (page.message() or "").startswith("test event") and page.message(),
                        "the test event's outcome in #message")
    assert "ris" in message and "not delivered" not in message and "delivered" in message, message
    assert [item["status"] for item in receiver.received if item["body"].get("Event") == "Test"] == [200]


# -- 3. the site's rules: a user denied /jobs sees no job ---------------------------------------

USERS = {"admin": "admin-secret", "alice": "alice-secret"}
DENY_ALICE_JOBS = """
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  if username == 'alice' and string.sub(uri, 1, 5) == '/jobs' then
    return false
  end
  return true
end
"""


def test_a_user_denied_jobs_by_the_sites_rule_sees_no_job(orthanc_factory, browser):
    server = orthanc_factory(start=False, config={"AuthenticationEnabled": True, "RegisteredUsers": dict(USERS),
                                                  "AdvancedRest": {"LoopbackUser": "admin"}})
    server.add_lua(DENY_ALICE_JOBS)
    server.session.auth = ("admin", USERS["admin"])
    server.start()
    job_id = _submit(server)
    assert _ended(server, job_id)["State"] == "Success"
    alice = ("alice", USERS["alice"])
    assert server.get(ROOT + "/jobs", auth=alice).status_code in (401, 403)  # the rule, as any client meets it

    admin_page = browser(server, name="admin").open()
    assert admin_page.wait_row(job_id, "Success")["type"] == "CreateDicom"
    alice_page = browser(server, user=alice, name="alice").open(live=False)
    alice_page.wait(lambda: alice_page.live() == "denied", "alice's page denied (body[data-live=denied])")
    assert alice_page.message(), "#message says why"
    assert alice_page.rows() == []
    assert job_id not in alice_page.js("return document.body.textContent")
    assert alice_page.deliveries() is None


# -- 4. hostile content stays text ------------------------------------------------------------

def test_hostile_content_of_a_job_is_shown_as_text_and_runs_nothing(plugin, browser):
    # The MIME type of a data URI is checked when the job runs; the job's ErrorDetails quotes it back.
    job_id = _submit(plugin, Tags={"PatientName": HOSTILE}, Content="data:%s;base64,AAAA" % HOSTILE)
    job = _ended(plugin, job_id)
    assert job["State"] == "Failure" and HOSTILE in job["ErrorDetails"], job
    page = browser(plugin).open()
    page.wait_row(job_id, "Failure")
    details = page.open_details(job_id)
    assert HOSTILE in json.loads(details["json"])["ErrorDetails"]
    assert HOSTILE in details["error"], "#details-error shows the error as text: %r" % details["error"]
    # Something the page draws after the details: by then an inserted <img> would have failed to load.
    later = _submit(plugin)
    page.wait_row(later, "Success")
    assert page.js("return typeof window.__pwned") == "undefined"
    assert page.js("return document.querySelectorAll('img').length") == 0
    assert page.js("return Array.prototype.map.call(document.scripts, function (s) { return s.src; })") \
        == [plugin.url + ROOT + "/ui/app.js"]
    assert not [url for url in page.requests() if url.rstrip("/").endswith("/x")], "the <img> was never loaded"


# -- 5. every request of the page goes to the Orthanc it came from ------------------------------

def test_no_request_of_the_page_leaves_its_orthanc(plugin, browser):
    job_id = _paused(plugin)
    page = browser(plugin).open()
    page.open_details(job_id)
    page.act("cancel")
    page.wait_row(job_id, "Failure")
    page.js("document.getElementById('filter-state').value = 'Failure';"
            "document.getElementById('filter-state').dispatchEvent(new Event('change'));")
    page.wait(lambda: page.rows() and all(row["state"] == "Failure" for row in page.rows()), "only Failure rows")
    urls = page.wait(lambda: (lambda urls: urls if any("/cancel" in u for u in urls) else None)(page.requests()),
                     "the cancel request in the browser's log")
    own = plugin.url + "/"
    assert [url for url in urls if not url.startswith(own)] == [], "requests that left %s" % plugin.url
    assert any(url.startswith(plugin.url + ROOT + "/jobs/changes") for url in urls)
    violations = [entry["message"] for entry in page.console() if "Content Security Policy" in entry["message"]]
    assert violations == [], "the page breaks its own policy"


# -- 6. a cross-site form cannot act through the admin's browser --------------------------------

class HostileSite:
    """Another origin on loopback: pages whose form POSTs itself (text/plain: a JSON body) to `target`."""

    def __init__(self, host):
        self.pages = {}
        self.host = host
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = pages.get(self.path, "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def form(self, path, target, fields):
        """Serve at `path` a page that POSTs the JSON object `fields` (its last key "x", value "") to
        `target` at once: text/plain sends name=value, so the name is the JSON up to that value."""
        body = json.dumps(fields)
        name, value = body[:-2], body[-2:]
        assert name.endswith('"x": "') and value == '"}', body
        self.pages[path] = (
            '<!DOCTYPE html><html><body><form method="post" enctype="text/plain" action="%s">'
            '<input type="hidden" name="%s" value="%s"></form>'
            '<script>document.forms[0].submit()</script></body></html>'
            % (html.escape(target), html.escape(name), html.escape(value)))
        return "http://%s:%d%s" % (self.host, self.port, path)

    def close(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(params=["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
def hostile_site(request):
    """127.0.0.1 on another port: another origin of the same site; localhost: another site."""
    site = HostileSite(request.param)
    yield site
    site.close()


def _landed(page, target):
    """The answer the browser shows after its form went to `target`: (status, the page's JSON)."""
    page.wait(lambda: page.driver.current_url == target, "the browser on %s" % target)
    text = page.wait(lambda: page.js("return document.body ? document.body.innerText : ''"), "the answer's text")
    statuses = [entry for entry in page.driver.get_log("performance")
                if '"Network.responseReceived"' in entry["message"]]
    status = [json.loads(entry["message"])["message"]["params"]["response"]["status"] for entry in statuses
              if json.loads(entry["message"])["message"]["params"]["response"]["url"] == target]
    return status[-1] if status else None, json.loads(text)


def test_a_cross_site_form_post_to_an_action_route_is_refused(plugin, hostile_site, browser):
    name = "CrossSite^Browser%s" % secrets.token_hex(4)
    job_id = _paused(plugin)
    before = _job(plugin, job_id)
    page = browser(plugin)

    create = plugin.url + ROOT + "/tools/create-dicom"
    page.driver.get(hostile_site.form("/create", create, {"Tags": {"PatientName": name}, "Content": SMALL_PNG,
                                                           "x": ""}))
    status, shown = _landed(page, create)
    assert (status, shown["HttpStatus"]) == (403, 403), shown

    cancel = plugin.url + ROOT + "/jobs/%s/cancel" % job_id
    page.driver.get(hostile_site.form("/cancel", cancel, {"x": ""}))
    status, shown = _landed(page, cancel)
    assert (status, shown["HttpStatus"]) == (403, 403), shown

    assert _patients_named(plugin, name) == []
    after = _job(plugin, job_id)
    assert (after["State"], after["ErrorCode"]) == (before["State"], before["ErrorCode"]) == ("Paused", 0)
    # The same POST from an API client (neither Origin nor Sec-Fetch-Site) is accepted: the route works.
    assert plugin.post(ROOT + "/jobs/%s/cancel" % job_id, data="").status_code == 200


# -- 7. the page's answers carry the contract's headers -----------------------------------------

@pytest.mark.parametrize("path, mime", [("/ui/index.html", "text/html"), ("/ui", "text/html"), ("/ui/", "text/html"),
                                        ("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")],
                         ids=["page", "ui", "ui-slash", "app.js", "style.css"])
def test_the_pages_answers_carry_a_strict_content_security_policy(plugin, path, mime):
    answer = plugin.get(ROOT + path)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["Content-Type"].split(";")[0] == mime
    assert answer.headers.get("Content-Security-Policy") == POLICY
    assert answer.headers.get("X-Content-Type-Options") == "nosniff"
    assert answer.headers.get("Referrer-Policy") == "no-referrer"
    for hop in answer.history:  # sent to the page: a redirection on the same server (301; 307 from Orthanc 1.13)
        assert hop.status_code in (301, 307) and answer.url.startswith(plugin.url + ROOT + "/ui/"), hop.headers


def test_the_page_uses_no_inline_script_or_style(plugin):
    markup = plugin.get(ROOT + "/ui/index.html").text
    tags = re.findall(r"<([a-zA-Z][^>]*)>", markup)
    scripts = [tag for tag in tags if re.match(r"script\b", tag, re.I)]
    assert scripts and all(re.search(r"\ssrc=", tag) for tag in scripts), scripts
    assert not re.search(r"<script[^>]*>\s*[^<\s]", markup, re.I), "an inline script"
    assert [tag for tag in tags if re.search(r"\s(on[a-z]+|style)\s*=", tag, re.I)] == []
    assert not re.search(r"<style\b", markup, re.I)


# -- 8. a picture of the page for the README ----------------------------------------------------

def test_a_few_jobs_in_several_states_are_counted_as_the_server_counts_them(orthanc_factory, browser, request):
    silent = socket.socket()  # a DICOM peer that never answers: a store to it runs until DicomScuTimeout
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    request.addfinalizer(silent.close)
    server = orthanc_factory(config={"DicomModalities": {"silent": ["SILENT", "127.0.0.1", silent.getsockname()[1]]},
                                     "DicomScuTimeout": 60})
    done = [_submit(server, images=3) for _ in range(3)]
    failed = _submit(server, Content="data:image/png;base64,AAAA")
    for job_id in done + [failed]:
        _ended(server, job_id)
    series = _job(server, done[0])["Content"]["ID"]
    study = server.get("/series/" + series).json()["ParentStudy"]
    answer = server.post("/studies/%s/archive" % study, data=json.dumps({"Asynchronous": True}))
    assert answer.status_code == 200, answer.text
    core = answer.json()["ID"]
    _ended(server, core)
    paused = [_paused(server, Priority=5), _paused(server)]  # the older one first: its priority is higher
    cancelled = _paused(server)
    assert server.post(ROOT + "/jobs/%s/cancel" % cancelled, data="").status_code == 200
    answer = server.post("/modalities/silent/store", data=json.dumps({"Resources": [study], "Asynchronous": True}))
    assert answer.status_code == 200, answer.text
    running = answer.json()["ID"]
    _until("job %s Running" % running, lambda: _job(server, running)["State"] == "Running")

    page = browser(server)
    page.driver.set_window_size(1000, 720)
    page.open()
    expected = {}
    for job_id in done + [failed, core] + paused + [cancelled, running]:
        expected[job_id] = _job(server, job_id)["State"]
        page.wait_row(job_id, expected[job_id])
    listed = server.get(ROOT + "/jobs", params={"expand": ""}).json()
    by_state = {state: sum(1 for job in listed if job["State"] == state)
                for state in ("Pending", "Running", "Paused", "Retry", "Failure", "Success")}
    assert by_state["Running"] == 1, "the long job still runs"
    page.wait(lambda: {k: int(v) for k, v in page.counts().items()} == by_state,
              "#counts as the server counts: %s" % by_state)
    # The figures: as {Root}/metrics gives them, once its gauges have every job (they refresh on their own).
    wanted = {"jobs-running": str(by_state["Running"]), "jobs-failed": str(by_state["Failure"])}
    page.wait(lambda: (lambda shown: all(shown.get(k) == v for k, v in wanted.items())
                       and shown == _figures(server))(page.figures()),
              "#figures %s, as {Root}/metrics gives them" % wanted, timeout=40)
    rows = page.rows()
    rank = ["Running", "Pending", "Retry", "Paused", "Failure", "Success"]
    listed = {job["ID"]: job for job in listed}
    order = [(rank.index(listed[row["id"]]["State"]), -listed[row["id"]]["Priority"]) for row in rows]
    assert order == sorted(order), "by state, then priority: %s" % rows
    for before, after in zip(rows, rows[1:]):  # then the newest first
        if (before["state"], before["priority"]) == (after["state"], after["priority"]):
            assert before["creationTime"] >= after["creationTime"], (before, after)
    assert [row["creationTime"] for row in rows] == [listed[row["id"]]["CreationTime"] for row in rows]
    assert [row["id"] for row in rows if row["state"] == "Paused"] == paused
    assert {row["type"] for row in rows} == {"CreateDicom", "Archive", "DicomModalityStore"}
    assert [row["id"] for row in rows if not row["determinate"]] == [], \
        "a progress bar without a value (shown as indeterminate): %s" % rows
    if os.environ.get("ADVANCED_REST_DOCS_SCREENSHOT"):
        shot = page.screenshot(os.path.join(RESULTS, "jobs-page-readme.png"), width=1000)
        os.makedirs(os.path.dirname(DOCS_SCREENSHOT), exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    page.choose("select#filter-type", "Archive")
    page.wait(lambda: [row["id"] for row in page.rows()] == [core], "only the Archive job")
    assert page.counts() == {k: str(v) for k, v in by_state.items()}, "the counts are of every job"
    page.choose("select#filter-type", "")
    page.wait(lambda: len(page.rows()) == len(rows), "every job again")
    assert server.post(ROOT + "/jobs/%s/cancel" % running, data="").status_code == 200


def _figures(server):
    """The page's headline figures as the server's metrics give them (the orthanc_jobs gauge by state, the
    create-dicom requests and those answered 400 or more)."""
    figures = {"jobs-running": 0, "jobs-failed": 0, "create-dicom-requests": 0, "create-dicom-errors": 0}
    for family in text_string_to_metric_families(server.get(ROOT + "/metrics").text):
        for sample in family.samples:
            if sample.name == "orthanc_jobs" and sample.labels.get("state") in ("Running", "Failure"):
                figures["jobs-running" if sample.labels["state"] == "Running" else "jobs-failed"] += sample.value
            if sample.name == "orthanc_create_dicom_requests_total":
                figures["create-dicom-requests"] += sample.value
                if int(sample.labels.get("status", "0")) >= 400:
                    figures["create-dicom-errors"] += sample.value
    return {name: "%g" % value for name, value in figures.items()}


# -- a cluster: the page of one replica shows the other's jobs, with their replica ---------------

def test_the_page_of_one_replica_shows_a_job_of_the_other_with_its_replica(cluster, browser):
    a, b = cluster
    page = browser(a).open()
    stored = b.post("/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "JobsPage^Cluster"},
                                                            "Content": SMALL_PNG}))
    assert stored.status_code == 200, stored.text
    submitted = time.monotonic()
    answer = b.post("/studies/%s/archive" % stored.json()["ParentStudy"], data=json.dumps({"Asynchronous": True}))
    assert answer.status_code == 200, answer.text
    core_job = answer.json()["ID"]  # a core job runs where it was submitted: on b
    plugin_job = _submit(b)
    row = page.wait_row(core_job, timeout=max(0.1, APPEARS_WITHIN - (time.monotonic() - submitted)))
    page.wait_row(core_job, "Success")
    # A job first seen in the feed shows its replica once the page read it whole (a moment later, loaded).
    row = page.wait(lambda: (page.row(core_job) or {}).get("replica") and page.row(core_job),
                    "the core job's replica shown")
    assert (row["type"], row["state"], row["replica"]) == ("Archive", "Success", b.identifier), row
    assert _ended(b, plugin_job)["State"] == "Success"
    ran_on = _job(a, plugin_job)["Replica"]
    assert ran_on in (a.identifier, b.identifier)
    assert page.wait(lambda: (page.row(plugin_job) or {}).get("state") == "Success" and page.row(plugin_job),
                     "the plugin job Success")["replica"] == ran_on
    details = page.open_details(core_job)
    assert json.loads(details["json"])["Replica"] == b.identifier
