"""POST /tools/create-dicom: the plugin against the core of the same Orthanc, case by case.

Each case of create_dicom_cases.py goes to an Orthanc without the plugin (the core,
our oracle) and to one with it; statuses, error codes, answers, the hierarchy and
the stored files must agree, and a refused request must leave nothing stored.
"""
import json

import pytest
from pydicom.datadict import keyword_for_tag

from create_dicom_cases import CASES, PARENT, PARENT_SETUP, core_answer, expected_on
from dicom_compare import GENERATED, differences, read

ROUTE = "/tools/create-dicom"
PARENT_FIELDS = {"patient": "ParentPatient", "study": "ParentStudy", "series": "ParentSeries", "instance": "ID"}


def _encode(body):
    return body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")


def _make_parent(case, core, plugin):
    """Create the parent on the core, and the very same file on the plugin's server."""
    answer = core.post(ROUTE, data=_encode(case.setup or PARENT_SETUP)).json()
    data = core.get("/instances/%s/file" % answer["ID"]).content
    assert plugin.post("/instances", data=data).json()["ID"] == answer["ID"]
    return answer[PARENT_FIELDS[case.parent]], data


def _files_of(server, answer, existing):
    """The files an answer points to, a series' new ones sorted by InstanceNumber."""
    if answer["Path"].startswith("/series/"):
        instances = server.get("/series/%s/instances" % answer["ID"]).json()
        files = [server.get("/instances/%s/file" % i["ID"]).content for i in instances if i["ID"] not in existing]
        return sorted(files, key=lambda data: int(read(data).InstanceNumber))
    return [server.get("/instances/%s/file" % answer["ID"]).content]


def _fixed_tags(case, body, parent_file):
    """Generated tags whose values must match: named in the request, or inherited."""
    text = body.decode("utf-8", "replace")
    fixed = {tag for tag in GENERATED
             if '"%s"' % keyword_for_tag(tag) in text or ('"%04x,%04x"' % (tag >> 16, tag & 0xFFFF)) in text.lower()}
    return fixed


# Generated tags a new instance can take from its parent, by the parent's level (the Patient,
# General Study and General Series modules); the instance's own dates and times are never among them.
_INHERITABLE = {
    "patient": {0x00100020},
    "study": {0x00100020, 0x0020000D, 0x00080020, 0x00080030},
    "series": {0x00100020, 0x0020000D, 0x00080020, 0x00080030, 0x0020000E, 0x00080021, 0x00080031},
}


def _inherited(core_file, parent_file, level):
    """Generated tags whose value the core's new instance took from the parent (a time generated
    in the same second as the parent's equals it without being inherited: not counted)."""
    if parent_file is None:
        return set()
    core, parent = read(core_file), read(parent_file)
    return {tag for tag in _INHERITABLE.get(level, ()) & GENERATED
            if tag in parent and tag in core and parent[tag].value == core[tag].value}


@pytest.fixture
def servers(request, leg, core, plugin, orthanc_factory):
    """(core, plugin) for the case: the session's pair, or a fresh pair with its configuration."""
    case = request.param
    if case.config:
        return orthanc_factory(plugin=False, config=case.config), orthanc_factory(plugin=True, config=case.config)
    return core, plugin


@pytest.mark.parametrize("servers, case", [(case, case) for case in CASES],
                         ids=[case.id for case in CASES], indirect=["servers"])
def test_create_dicom_like_the_core(servers, case):
    core, plugin = servers
    version = core.get("/system").json()["Version"]
    if case.legs and version not in case.legs:
        pytest.skip("case %s concerns Orthanc %s, this leg runs %s" % (case.id, "/".join(case.legs), version))

    body = _encode(case.body)
    parent_file = None
    if case.parent:
        parent_id, parent_file = _make_parent(case, core, plugin)
        body = body.replace(PARENT.encode(), parent_id.encode())
    if case.default_encoding:
        for server in (core, plugin):
            assert server.put("/tools/default-encoding", data=case.default_encoding).ok
    try:
        plugin.jobs_settled()  # the shared server: an earlier test's job must not store meanwhile
        existing = [set(server.get("/instances").json()) for server in (core, plugin)]
        before = len(existing[1])
        for _ in range(case.repeat):
            theirs = core.post(ROUTE, data=body)
            ours = plugin.post(ROUTE, data=body)
    finally:
        if case.default_encoding:
            for server in (core, plugin):
                server.put("/tools/default-encoding", data="Latin1")

    recorded = core_answer(case.id, version)
    if recorded is not None:  # the table that stands in for this core on other legs must still be true
        status, code = recorded
        assert theirs.status_code == status and (code is None or theirs.json()["OrthancStatus"] == code), \
            "CORE_ANSWERS records %s for Orthanc %s, whose core answered %s %s" % (
                recorded, version, theirs.status_code, theirs.text[:300])
    deliberate = expected_on(case, version)
    expected, code = deliberate or (theirs.status_code, None)
    assert ours.status_code == expected, "core answered %s %s, plugin %s %s" % (
        theirs.status_code, theirs.text[:300], ours.status_code, ours.text[:300])

    if ours.status_code != 200:
        assert len(plugin.get("/instances").json()) == before, "a refused request left instances behind"
        error = ours.json()
        assert error["HttpStatus"] == expected and error["Uri"] == ROUTE and error["Method"] == "POST"
        if deliberate is None:
            code = theirs.json()["OrthancStatus"]
        if code is not None:
            assert error["OrthancStatus"] == code, (theirs.text, ours.text)
        return
    if deliberate is not None:
        return  # this core lacks the feature, or refuses it: nothing to compare the file with

    a, b = theirs.json(), ours.json()
    assert sorted(a) == sorted(b)
    assert a["Status"] == b["Status"]
    assert a["Path"].split("/")[1] == b["Path"].split("/")[1]
    if case.parent:
        shared = {"patient": ["ParentPatient"], "study": ["ParentPatient", "ParentStudy"],
                  "series": ["ParentPatient", "ParentStudy", "ParentSeries"]}.get(case.parent, [])
        for field in shared:
            if field in a:
                assert a[field] == b[field], "the new instance landed elsewhere in the hierarchy"
    core_files, plugin_files = _files_of(core, a, existing[0]), _files_of(plugin, b, existing[1])
    assert len(core_files) == len(plugin_files)
    fixed = _fixed_tags(case, body, parent_file)
    for index, (x, y) in enumerate(zip(core_files, plugin_files)):
        assert differences(x, y, fixed | _inherited(x, parent_file, case.parent)) == [], "instance %d" % (index + 1)
    for path in case.extra_get:
        got = [server.get("/instances/%s%s" % (answer["ID"], path)) for server, answer in ((core, a), (plugin, b))]
        if got[0].status_code == 200:
            assert (got[1].status_code, got[1].content) == (200, got[0].content)
