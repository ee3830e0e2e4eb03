"""A page elsewhere cannot make a logged-in browser change anything through the plugin's routes.

A browser marks a request from another site (Sec-Fetch-Site, or an Origin other than the server's);
curl and API clients send neither and work as before. The requests here are the ones a hostile page
can make a browser send: a form POST (text/plain carries a JSON body) and a fetch without CORS.
"""
import json

import pytest

ROOT = "/advanced-rest"
HOSTILE = {"Origin": "https://evil.example.com", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
OLD_BROWSER = {"Origin": "https://evil.example.com", "Content-Type": "text/plain"}  # before Sec-Fetch-Site
# What a hostile form's text/plain POST carries: `{"Tags": ...,"x":"=` + `"}`
FORM_BODY = '{"Tags": {"PatientName": "CrossSite^Victim"}, "x": "="}'


def _victims(server):
    found = server.post("/tools/find", data=json.dumps({"Level": "Patient",
                                                        "Query": {"PatientName": "CrossSite^Victim"}}))
    assert found.status_code == 200
    return found.json()


@pytest.mark.parametrize("headers", [HOSTILE, OLD_BROWSER], ids=["sec-fetch-site", "origin-only"])
@pytest.mark.parametrize("path", ["/tools/create-dicom", ROOT + "/tools/create-dicom"])
def test_a_cross_site_create_dicom_is_refused_and_creates_nothing(plugin, headers, path):
    answer = plugin.post(path, data=FORM_BODY, headers=headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["OrthancStatus"] == 45 and "TrustedOrigins" in answer.json()["Details"]
    assert _victims(plugin) == []


def test_a_cross_site_job_action_is_refused_and_the_job_is_untouched(plugin):
    job = plugin.post(ROOT + "/tools/create-dicom", data=json.dumps({"Tags": {"PatientName": "CrossSite^Job"},
                                                                       "Asynchronous": True})).json()["ID"]
    done = plugin.get(ROOT + "/jobs/%s/wait" % job, params={"timeout": 30}).json()
    assert done["State"] == "Success"
    for action in ("cancel", "resubmit"):
        answer = plugin.post(ROOT + "/jobs/%s/%s" % (job, action), data="", headers=HOSTILE)
        assert answer.status_code == 403, answer.text
    assert plugin.delete(ROOT + "/jobs/%s" % job, headers=HOSTILE).status_code == 403
    after = plugin.get(ROOT + "/jobs/%s" % job).json()
    assert (after["State"], after["CompletionTime"]) == ("Success", done["CompletionTime"])


def test_reads_scripts_and_the_servers_own_pages_still_work(plugin):
    # A cross-site read changes nothing (and the browser keeps its answer from the other page).
    assert plugin.get(ROOT + "/jobs", headers=HOSTILE).status_code == 200
    # curl and API clients send neither header; the server's own page sends same-origin, or its own Origin.
    host = plugin.url.split("://", 1)[1]
    for headers in ({}, {"Sec-Fetch-Site": "same-origin", "Origin": plugin.url},
                    {"Origin": "http://" + host}):
        body = json.dumps({"Tags": {"PatientName": "CrossSite^Allowed"}})
        answer = plugin.post(ROOT + "/tools/create-dicom", data=body, headers=headers)
        assert answer.status_code == 200, (headers, answer.text)


def test_a_trusted_origin_may_act(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"TrustedOrigins": ["https://Viewer.example.org"]}})
    headers = {"Origin": "https://viewer.example.org", "Sec-Fetch-Site": "cross-site"}
    body = json.dumps({"Tags": {"PatientName": "CrossSite^Trusted"}})
    assert server.post(ROOT + "/tools/create-dicom", data=body, headers=headers).status_code == 200
    assert server.post(ROOT + "/tools/create-dicom", data=body, headers=HOSTILE).status_code == 403
