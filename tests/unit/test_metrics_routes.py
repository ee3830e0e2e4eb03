"""The metrics routes without Orthanc: the core's copies of the pushed values replaced by typed gauges."""
import collections

import pytest
from prometheus_client.parser import text_string_to_metric_families

from advanced_rest.metrics.families import Metrics, tally
from advanced_rest.metrics.push import HEADLINE, headline
from advanced_rest.metrics.routes import MetricsApi, without_names
from advanced_rest.web import Request

PUSHED = "orthanc_advanced_rest_jobs_success"

# As Orthanc prints its registry: one untyped line per name, value and timestamp (ms).
CORE = (b"orthanc_count_instances 3 1700000000000\n"
        b"orthanc_advanced_rest_jobs_failure 0 1700000000000\n"
        b"orthanc_advanced_rest_jobs_pending 0 1700000000000\n"
        b"orthanc_advanced_rest_jobs_running 0 1700000000000\n"
        b"orthanc_advanced_rest_jobs_success 1 1700000000000\n"
        b"orthanc_jobs_pending 0 1700000000000\n")


@pytest.mark.parametrize("text, expected", [
    (b"a 1 5\n" + PUSHED.encode() + b" 1 5\nb 2 5\n", b"a 1 5\nb 2 5\n"),
    (PUSHED.encode() + b"{x=\"1\"} 1\n", b""),
    (b"# HELP " + PUSHED.encode() + b" text\n# TYPE " + PUSHED.encode() + b" gauge\n" + PUSHED.encode() + b" 1\n",
     b""),
    (b"# HELP a text\n# TYPE a gauge\na 1\n", b"# HELP a text\n# TYPE a gauge\na 1\n"),
    (b"# a comment naming " + PUSHED.encode() + b"\n", b"# a comment naming " + PUSHED.encode() + b"\n"),
    (PUSHED.encode() + b"_total 1\n" + PUSHED.encode() + b"s 1\n", PUSHED.encode() + b"_total 1\n" +
     PUSHED.encode() + b"s 1\n"),
    (b"\na 1\n\n", b"\na 1\n\n"),
    (b"a 1\n" + PUSHED.encode() + b" 1", b"a 1\n"),
    (PUSHED.encode() + b" 1\na 1", b"a 1"),
    (b"", b""),
], ids=["sample-with-timestamp", "labels", "help-and-type", "other-families-kept", "comment-kept",
        "longer-names-kept", "blank-lines-kept", "last-line-without-newline", "kept-last-line-without-newline",
        "empty"])
def test_without_names_drops_only_the_lines_of_those_names(text, expected):
    assert without_names(text, HEADLINE) == expected


def _api(enabled=True, core=CORE, jobs=()):
    metrics = Metrics(lambda: enabled, [lambda: tally(jobs)])
    return MetricsApi(metrics, lambda: core, lambda: headline(lambda: tally(jobs)))


def _request():
    return Request("GET", "/tools/metrics-prometheus", headers={})


def _sample_lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_pushed_values_are_served_once_as_gauges_computed_on_scrape():
    jobs = [{"Type": "CreateDicom", "State": "Success"}] * 2 + [{"Type": "CreateDicom", "State": "Running"}]
    text = _api(jobs=jobs).core(_request()).body.decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, help_text in HEADLINE.items():
        assert families[name].type == "gauge"
        assert families[name].documentation == help_text
        assert "# HELP %s " % name in text and "# TYPE %s gauge" % name in text
        assert len([line for line in _sample_lines(text) if line.split()[0] == name]) == 1
    # Now, from the plugin's jobs: not the core's pushed copy (success 1), which lags.
    values = {name: families[name].samples[0].value for name in HEADLINE}
    assert values == {"orthanc_advanced_rest_jobs_pending": 0, "orthanc_advanced_rest_jobs_running": 1,
                      "orthanc_advanced_rest_jobs_success": 2, "orthanc_advanced_rest_jobs_failure": 0}
    # and consistent with orthanc_jobs in the same document
    jobs_gauge = {sample.labels["state"]: sample.value for sample in families["orthanc_jobs"].samples}
    assert jobs_gauge["Success"] == 2 and jobs_gauge["Running"] == 1


def test_the_core_lines_are_kept_verbatim_and_no_sample_name_appears_twice():
    text = _api().core(_request()).body.decode()
    assert text.startswith("orthanc_count_instances 3 1700000000000\n")
    assert "orthanc_jobs_pending 0 1700000000000\n" in text
    owners = collections.defaultdict(set)  # sample name -> families
    series = collections.Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            owners[sample.name].add(family.name)
            series[(sample.name, tuple(sorted(sample.labels.items())))] += 1
    assert {name: names for name, names in owners.items() if len(names) > 1} == {}
    assert [key for key, count in series.items() if count > 1] == []
    assert "1700000000000" not in "".join(line for line in _sample_lines(text) if line.startswith(PUSHED))


def test_a_core_text_without_final_newline_still_gives_one_document():
    text = _api(core=b"orthanc_count_instances 3 1700000000000").core(_request()).body.decode()
    assert text.startswith("orthanc_count_instances 3 1700000000000\n# HELP ")


def test_metrics_switched_off_serve_the_core_text_as_is():
    assert _api(enabled=False).core(_request()).body == CORE


def test_the_plugins_own_route_does_not_repeat_the_pushed_values():
    text = _api().own(_request()).body.decode()
    assert "orthanc_jobs" in text
    assert not [name for name in HEADLINE if name in text]


def test_headline_counts_the_plugins_jobs_by_state():
    jobs = [{"State": "Pending"}, {"State": "Failure"}, {"State": "Paused"}, {"State": "Failure"}, {}]
    assert headline(lambda: tally(jobs)) == {"orthanc_advanced_rest_jobs_pending": 1, "orthanc_advanced_rest_jobs_running": 0,
                                      "orthanc_advanced_rest_jobs_success": 0, "orthanc_advanced_rest_jobs_failure": 2}
