"""Metrics on real Orthanc servers: valid exposition (prometheus-client's parser, promtool), true values."""
import json
import shutil
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from advanced_rest.metrics import labels
from advanced_rest.metrics.push import PUSH_EVERY
from create_dicom_cases import data_uri, jpeg_bytes, png_data_uri
from servers import until

OWN = "/advanced-rest/metrics"
CORE = "/tools/metrics-prometheus"
FAMILIES = {
    "orthanc_create_dicom_requests": "counter",
    "orthanc_create_dicom_duration_seconds": "histogram",
    "orthanc_jobs": "gauge",
    "orthanc_job_duration_seconds": "histogram",
    "orthanc_instances_received": "counter",
    "orthanc_plugin_requests": "counter",
    "orthanc_plugin_request_duration_seconds": "histogram",
}
PROMTOOL = shutil.which("promtool")
# Pushed into the core's registry too (SetMetricsValue); on /tools/metrics-prometheus served by the plugin
# as gauges of its own, the core's untyped copies dropped.
PUSHED = ("orthanc_advanced_rest_jobs_pending", "orthanc_advanced_rest_jobs_running",
          "orthanc_advanced_rest_jobs_success", "orthanc_advanced_rest_jobs_failure")
# The names the text format prints for our families (counters with _total), and their samples' suffixes.
PRINTED = {name + "_total" if kind == "counter" else name for name, kind in FAMILIES.items()}
SUFFIXES = ("", "_bucket", "_count", "_sum", "_created")


def _samples(text):
    """{(name, sorted labels): value} of every sample in an exposition text."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(text, name, **labels):
    return _samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def _until_own(server, predicate, timeout=60):
    """The plugin's metrics text once predicate(text) holds (looks taken every second or so); fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        text = server.get(OWN).text
        if predicate(text):
            return text
        assert time.monotonic() < deadline, f"not within {timeout} s; last text:\n{text[-3000:]}"
        time.sleep(0.1)


def _counted(server, total, timeout=60):
    """The plugin's text once orthanc_instances_received_total sums to `total` (counted off the
    storing threads, from NEW_INSTANCE changes: it lags a little)."""
    deadline = time.monotonic() + timeout
    while True:
        text = server.get(OWN).text
        counted = sum(value for (name, _), value in _samples(text).items()
                      if name == "orthanc_instances_received_total")
        if counted >= total or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def _promtool(text):
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout + result.stderr


def _ours(name):
    """Whether a printed metric name (of a sample, HELP, TYPE or promtool problem) is the plugin's."""
    return name.startswith("orthanc_advanced_rest_") or any(
        name == family + suffix for family in PRINTED for suffix in SUFFIXES)


def _line_name(line):
    words = line.split()
    if line.startswith("#"):
        return words[2] if len(words) > 2 and words[1] in ("HELP", "TYPE") else None
    return line.split("{")[0].split()[0] if words else None


def _our_lines(text):
    """The lines of `text` that the plugin added: its families, HELP and TYPE included."""
    return "".join(line + "\n" for line in text.splitlines() if _line_name(line) and _ours(_line_name(line)))


def _check_core_route(text):
    """/tools/metrics-prometheus served by the plugin: one document that prometheus-client parses, no
    sample (nor series) twice, each pushed value once with HELP and TYPE gauge, our lines clean for promtool."""
    owners, series = {}, set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert owners.setdefault(sample.name, family.name) == family.name, sample.name
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in series, key
            series.add(key)
    for name in PUSHED:
        assert "# HELP %s " % name in text and "# TYPE %s gauge\n" % name in text, name
        assert len([line for line in text.splitlines() if _line_name(line) == name]) == 3, name  # HELP, TYPE, value
    ours = _our_lines(text)
    assert set(PUSHED) | {"orthanc_jobs"} <= {_line_name(line) for line in ours.splitlines()}
    assert _promtool(ours) == (0, ""), ours
    # The core's own lines have no HELP and abbreviated units (lint problems, exit 3), which
    # cannot change without renaming them; the document must parse, and none of ours be named.
    code, output = _promtool(text)
    assert code in (0, 3), output
    problems = [line for line in output.splitlines() if line.strip()]
    assert not [line for line in problems if _ours(line.split()[0])], problems


@pytest.fixture
def fresh(orthanc_factory):
    # The SDK's store on every leg: where the plugin stores through Orthanc's HTTP server (calls into Orthanc
    # keeping the GIL, bookworm) its instances' origin is RestApi, from its self-test at start on (issue 26,
    # tests/integration/test_create_dicom_store.py); these tests count origins, not that choice.
    return orthanc_factory(config={"AdvancedRest": {"LoopbackStoreShare": 0}})


def test_every_family_has_help_and_type_and_parses(plugin):
    plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Content": png_data_uri("L")}))
    text = plugin.get(OWN).text
    kinds = {family.name: family.type for family in text_string_to_metric_families(text)}
    for name, kind in FAMILIES.items():
        assert kinds.get(name) == kind, name
        printed = name + "_total" if kind == "counter" else name  # the text format names counters so
        assert "# HELP %s " % printed in text and "# TYPE %s %s" % (printed, kind) in text


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed")
def test_promtool_accepts_both_endpoints(plugin):
    plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Content": png_data_uri("RGB")}))
    assert _promtool(plugin.get(OWN).text) == (0, "")
    _check_core_route(plugin.get(CORE).text)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed")
def test_the_pushed_values_are_typed_once_and_current_after_a_push(fresh):
    job = fresh.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Asynchronous": True})).json()
    assert fresh.get("/jobs/%s/wait" % job["ID"], params={"timeout": 30}).status_code == 200
    time.sleep(PUSH_EVERY + 1)  # the core's registry now holds success 1 too, untyped
    text = fresh.get(CORE).text
    _check_core_route(text)
    assert _value(text, "orthanc_advanced_rest_jobs_success") == 1
    assert _value(text, "orthanc_advanced_rest_jobs_pending") == _value(text, "orthanc_advanced_rest_jobs_running") == 0
    assert _value(text, "orthanc_jobs", type="CreateDicom", state="Success") == 1  # the same source, same scrape
    line = next(line for line in text.splitlines() if line.startswith("orthanc_advanced_rest_jobs_success "))
    assert len(line.split()) == 2  # computed on scrape: no timestamp, unlike the core's copy
    assert not [name for name in PUSHED if name in fresh.get(OWN).text]  # served once, on one route


def test_the_core_endpoint_keeps_the_core_lines_then_adds_the_plugins(plugin):
    text = plugin.get(CORE).text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"orthanc_count_instances", "orthanc_jobs_pending"} <= names  # the core's
    assert set(FAMILIES) <= names  # ours
    line = next(line for line in text.splitlines() if line.startswith("orthanc_count_instances "))
    assert len(line.split()) == 3  # value and timestamp kept


def test_openmetrics_when_asked(plugin):
    answer = plugin.get(OWN, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert answer.headers["Content-Type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")


def test_values_follow_what_happened(fresh):
    server = fresh
    answers = [server.post("/tools/create-dicom", data=json.dumps(body)) for body in (
        {"Tags": {"Modality": "CT"}, "Content": png_data_uri("L")},
        {"Tags": {"Modality": "CT"}, "Content": png_data_uri("L")},
        {"Tags": {"NoSuchTag": "x"}},
        {"Tags": {}, "Content": [png_data_uri("L"), png_data_uri("L")]})]
    ct_instance = answers[0].json()["ID"]
    job = server.post("/tools/create-dicom", data=json.dumps({"Tags": {"Modality": "MR"}, "Asynchronous": True})).json()
    server.get("/jobs/%s/wait" % job["ID"], params={"timeout": 30})
    _counted(server, 5)  # counted before one of them is deleted and sent again
    data = server.get("/instances/%s/file" % ct_instance).content
    server.delete("/instances/%s" % ct_instance)
    server.post("/instances", data=data)  # a CT instance over REST
    _counted(server, 6)  # 2 CT, 2 in the series, 1 MR by the job, the CT again over REST
    # The jobs gauge sees the jobs through a look every second.
    text = _until_own(server, lambda text: _value(text, "orthanc_jobs", type="CreateDicom", state="Success") == 1)
    assert _value(text, "orthanc_create_dicom_requests_total", content_type="png", status="200") == 2
    assert _value(text, "orthanc_create_dicom_requests_total", content_type="none", status="400") == 1
    assert _value(text, "orthanc_create_dicom_requests_total", content_type="series", status="200") == 1
    assert _value(text, "orthanc_create_dicom_duration_seconds_count", content_type="png") == 2
    assert _value(text, "orthanc_instances_received_total", origin="Plugins", modality="CT",
                  transfer_syntax="explicit-le") == 2
    assert _value(text, "orthanc_instances_received_total", origin="RestApi", modality="CT",
                  transfer_syntax="explicit-le") == 1
    assert _value(text, "orthanc_jobs", type="CreateDicom", state="Success") == 1
    assert _value(text, "orthanc_jobs", type="CreateDicom", state="Running") == 0
    assert _value(text, "orthanc_job_duration_seconds_count", type="CreateDicom", state="Success") == 1
    assert _value(text, "orthanc_plugin_requests_total", route="/tools/create-dicom", method="POST",
                  status="400") == 1


def _read_back(server, instance):
    """The labels of an instance as the counter reads them back (Origin, its series' Modality, transfer syntax),
    bounded as the family bounds them."""
    metadata = server.get("/instances/%s/metadata?expand" % instance).json()
    modality = server.get("/instances/%s/series" % instance).json().get("MainDicomTags", {}).get("Modality", "")
    return (labels.bounded(metadata.get("Origin", "Unknown"), labels.ORIGINS), labels.bounded(modality, labels.MODALITIES),
            labels.bounded(metadata.get("TransferSyntax", ""), labels.TRANSFER_SYNTAXES))


def _received(text):
    """{(origin, modality, transfer_syntax): count} of orthanc_instances_received_total."""
    found = {}
    for (name, sample), value in _samples(text).items():
        if name == "orthanc_instances_received_total":
            sample = dict(sample)
            found[(sample["origin"], sample["modality"], sample["transfer_syntax"])] = value
    return found


def _tally(found):
    counted = {}
    for key in found:
        counted[key] = counted.get(key, 0) + 1.0
    return counted


def _plugin_read_backs(server):
    """The instances the plugin read back, once per read-back (its calls into Orthanc's REST API, which
    --verbose logs)."""
    return sorted(line.split("/instances/")[1].split("/")[0] for line in server.log_text().splitlines()
                  if "Plugin making REST GET call" in line and "/metadata?expand" in line)


CREATED = (  # (what, body): create-dicom requests of every kind the plugin counts without a read-back
    ("png", {"Tags": {"Modality": "CT"}, "Content": png_data_uri("L")}),
    ("jpeg", {"Tags": {"Modality": "MR"}, "Content": data_uri("image/jpeg", jpeg_bytes()), "Encapsulate": True}),
    # The series' Modality is its first instance's: both are counted OT, as a read-back counts them.
    ("series", {"Tags": {}, "Content": [png_data_uri("L"), {"Content": png_data_uri("L"), "Tags": {"Modality": "MR"}}]}),
    ("job", {"Tags": {"Modality": "US"}, "Content": png_data_uri("RGB"), "Asynchronous": True}),
)


@pytest.mark.parametrize("share", [0, None], ids=["sdk", "http-store-where-the-gil-is-kept"])
def test_the_plugins_own_instances_are_counted_as_a_read_back_would_without_one(orthanc_factory, share):
    server = orthanc_factory(config={"AdvancedRest": {"LoopbackStoreShare": share}} if share == 0 else None,
                             args=("--verbose",))
    # Unless the share is 0, the self-test at ORTHANC_STARTED chooses how synchronous requests store (Origin
    # RestApi or Plugins).
    deadline = time.monotonic() + 30
    while share != 0 and "Self-test of the GIL: calls into Orthanc" not in server.log_text():
        assert time.monotonic() < deadline, "the GIL self-test said nothing"
        time.sleep(0.05)
    through_http = share != 0 and "Self-test of the GIL: calls into Orthanc keep it" in server.log_text()
    ours = []
    for what, body in CREATED:
        answer = server.post("/tools/create-dicom", data=json.dumps(body))
        assert answer.status_code == 200, (what, answer.text)
        if body.get("Asynchronous"):
            job = server.get("/jobs/%s/wait" % answer.json()["ID"], params={"timeout": 30}).json()
            assert job["State"] == "Success", job
        elif isinstance(body["Content"], list):
            ours += [item["ID"] for item in server.get("/series/%s/instances" % answer.json()["ID"]).json()]
        else:
            ours.append(answer.json()["ID"])
    ours += [item for item in server.get("/instances").json() if item not in ours]  # the job's
    assert len(ours) == 5
    legacy = server.post("/tools/create-dicom", data=json.dumps({"PatientName": "Flat"})).json()["ID"]
    other = server.post("/tools/create-dicom", data=json.dumps({"Tags": {"Modality": "CT"}})).json()["ID"]
    _counted(server, 7)
    expected = [_read_back(server, instance) for instance in ours + [legacy, other]]
    data = server.get("/instances/%s/file" % other).content
    server.delete("/instances/%s" % other)
    assert server.post("/instances", data=data).json()["ID"] == other  # the same file, POSTed directly
    text = _counted(server, 8)
    expected.append(_read_back(server, other))
    assert expected[-1][0] == "RestApi" and expected[-1][1:] == expected[-2][1:]
    assert {origin for origin, _, _ in expected[:-1]} == ({"Plugins", "RestApi"} if through_http else {"Plugins"})
    assert _received(text) == _tally(expected)
    # Read back: the legacy request's instance and the one POSTed directly, nothing of create-dicom's else.
    # The log may reach us after the count (a container's is collected by Docker): wait for the last read-back's
    # line; every earlier line is before it in the same stream.
    until("the read-back of the file POSTed directly, in Orthanc's log",
          lambda: other in _plugin_read_backs(server), timeout=10)
    assert _plugin_read_backs(server) == sorted([legacy, other])


def test_where_orthanc_transcodes_what_it_receives_the_plugins_instances_are_read_back(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"LoopbackStoreShare": 0},
                                     "IngestTranscoding": "1.2.840.10008.1.2"})
    instance = server.post("/tools/create-dicom", data=json.dumps({"Tags": {"Modality": "CT"},
                                                                    "Content": png_data_uri("L")})).json()["ID"]
    text = _counted(server, 1)
    assert _read_back(server, instance) == ("Plugins", "CT", "implicit-le")
    assert _received(text) == {("Plugins", "CT", "implicit-le"): 1.0}


def test_an_instance_received_over_dicom_is_counted(fresh, orthanc_factory):
    sender = orthanc_factory(plugin=False, config={
        "DicomModalities": {"target": [fresh.aet, "127.0.0.1", fresh.dicom_port]}})
    body = {"Tags": {"Modality": "MR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "Content": png_data_uri("L")}
    instance = sender.post("/tools/create-dicom", data=json.dumps(body)).json()["ID"]
    answer = sender.post("/modalities/target/store", data=json.dumps({"Resources": [instance]}))
    assert answer.status_code == 200, answer.text
    text = _counted(fresh, 1)
    assert _value(text, "orthanc_instances_received_total", origin="DicomProtocol", modality="MR",
                  transfer_syntax="explicit-le") + _value(
        text, "orthanc_instances_received_total", origin="DicomProtocol", modality="MR",
        transfer_syntax="implicit-le") == 1


def test_labels_stay_bounded(fresh):
    fresh.post("/tools/create-dicom", data=json.dumps({"Tags": {"Modality": "WEIRD%d" % 1}}))
    fresh.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Content": "data:image/gif;base64,AAAA"}))
    text = _counted(fresh, 1)
    assert _value(text, "orthanc_instances_received_total", origin="Plugins", modality="other",
                  transfer_syntax="explicit-le") == 1
    assert _value(text, "orthanc_create_dicom_requests_total", content_type="other", status="415") == 1


def test_metrics_switched_off_record_and_serve_nothing_of_ours(orthanc_factory):
    server = orthanc_factory(config={"MetricsEnabled": False})
    server.post("/tools/create-dicom", data=json.dumps({"Tags": {}}))
    assert server.get(OWN).text == ""
    assert "orthanc_create_dicom" not in server.get(CORE).text

    server = orthanc_factory()
    assert server.put("/tools/metrics", data="0").status_code == 200
    # The switch is read at most once a second; the route serving nothing shows it was read.
    _until_own(server, lambda text: text == "")
    server.post("/tools/create-dicom", data=json.dumps({"Tags": {}}))
    assert server.put("/tools/metrics", data="1").status_code == 200
    text = _until_own(server, lambda text: text != "")
    assert _value(server.get(OWN).text, "orthanc_create_dicom_requests_total", content_type="none",
                  status="200") == 0


def test_headline_values_reach_the_core_registry(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"ServeCoreRoutes": False}})
    job = server.post("/advanced-rest/tools/create-dicom", data=json.dumps({"Tags": {}, "Asynchronous": True})).json()
    server.get("/advanced-rest/jobs/%s/wait" % job["ID"], params={"timeout": 30})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        text = server.get(CORE).text  # the core's own route here
        if "orthanc_advanced_rest_jobs_success 1" in text:
            break
        time.sleep(0.5)
    assert "orthanc_advanced_rest_jobs_success 1" in text
    assert "orthanc_create_dicom_requests" not in text


PROMETHEUS = shutil.which("prometheus")


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian's package) is not installed")
def test_a_real_prometheus_scrapes_the_plugin_with_basic_auth(orthanc_factory, tmp_path):
    import requests

    from servers import free_port

    server = orthanc_factory(config={"AuthenticationEnabled": True, "RegisteredUsers": {"scraper": "s3cret"}})
    assert requests.get(server.url + OWN).status_code == 401  # the route is protected like the core's
    for _ in range(3):
        server.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Content": png_data_uri("L")}))
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: orthanc\n"
        "    metrics_path: /tools/metrics-prometheus\n"
        "    basic_auth: {username: scraper, password: s3cret}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % server.http_port)
    process = subprocess.Popen([PROMETHEUS, "--config.file=%s" % (tmp_path / "prometheus.yml"),
                                "--storage.tsdb.path=%s" % (tmp_path / "data"),
                                "--web.listen-address=127.0.0.1:%d" % port],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        api = "http://127.0.0.1:%d/api/v1" % port
        deadline, value, health = time.monotonic() + 60, None, None
        # Until both: a scrape can land between the two reads (the target read "unknown", the value 3).
        while time.monotonic() < deadline and (value != "3" or health != "up"):
            time.sleep(1)
            try:
                query = 'orthanc_create_dicom_requests_total{content_type="png",status="200"}'
                result = requests.get(api + "/query", params={"query": query}, timeout=5).json()["data"]["result"]
                value = result[0]["value"][1] if result else None
                targets = requests.get(api + "/targets", timeout=5).json()["data"]["activeTargets"]
                health = targets[0]["health"] if targets else None
            except (requests.RequestException, KeyError, IndexError):
                continue
        assert health == "up"
        assert value == "3"
    finally:
        process.terminate()
        process.wait(20)


def test_every_dashboard_expression_names_an_existing_family(plugin):
    import os
    import re

    path = os.path.join(os.path.dirname(__file__), "..", "..", "docker", "grafana", "dashboards", "advanced-rest.json")
    with open(path) as f:
        dashboard = json.load(f)
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert expressions
    plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Content": png_data_uri("L")}))
    exposed = set()
    for family in text_string_to_metric_families(plugin.get(CORE).text):
        exposed.add(family.name)
        exposed.update(sample.name for sample in family.samples)
    for expression in expressions:
        names = set(re.findall(r"\borthanc_[a-z0-9_]+", expression))
        assert names, expression
        # A histogram with no observation yet has its family, not its _bucket samples.
        missing = {name for name in names if name not in exposed and re.sub(
            r"_(bucket|count|sum|total)$", "", name) not in exposed}
        assert not missing, (expression, missing)
