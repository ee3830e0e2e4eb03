"""POST /tools/create-dicom with hostile-but-fair bodies: each is refused with a 4xx, an error
body in Orthanc's shape naming the limit when one applies, Orthanc keeps answering and nothing
is stored. Where the core refuses the same body with a 4xx, the plugin answers as it does.
"""
import base64
import json
from dataclasses import dataclass
from typing import Optional

import pytest

from forged_images import image_bytes, jpeg as forged_jpeg, png

ROUTE = "/tools/create-dicom"
V110, V113 = "1.10.1", "1.13.0"
CRASH = "crash"  # the core's process dies: never sent to it


def data_uri(mime, payload):
    return "data:%s;base64,%s" % (mime, base64.b64encode(payload).decode("ascii"))


def forged_png(width, height):
    """A PNG of about 1 KB whose IHDR claims `width` x `height`, RGBA at 16 bits."""
    return png(width, height, depth=16, color=6)


def deep(levels):
    """Tags nesting `levels` sequences (written by hand: json.dumps would recurse)."""
    return ('{"Tags":' + '{"ReferencedStudySequence":[' * levels + "{}" + "]}" * levels + "}").encode()


def content(mime, payload):
    return json.dumps({"Tags": {}, "Content": data_uri(mime, payload)}).encode()


TINY_PNG = data_uri("image/png", image_bytes("PNG", "L", (1, 1)))
LONE = "a\\ud800\\udfff\\ud800"  # JSON escapes: a valid pair, then a lone high surrogate


@dataclass
class Hostile:
    id: str
    body: bytes
    status: int  # what the plugin answers
    code: int  # its OrthancStatus
    names: Optional[str] = None  # the option Details must name
    compare: bool = False  # send to the core too: the plugin must answer what it answers
    # What the cores answered (per version) when the case was written, for the reader: the test does not
    # ask them again (they crash, or store hundreds of megabytes); `compare` cases do ask the live core.
    core: Optional[dict] = None


CASES = [
    # Limits: the core has none (it stores, or crashes); the plugin refuses with 400 / 3.
    Hostile("deep-sequence-45", deep(45), 400, 3, "AdvancedRest.MaxSequenceDepth (16)",
            core={V110: 200, V113: 200}),  # stored by the core; the plugin's store crashed 1.10.1
    Hostile("deep-sequence-2000", deep(2000), 400, 3, "AdvancedRest.MaxSequenceDepth (16)",
            core={V110: CRASH, V113: CRASH}),
    Hostile("json-nesting-100000", ('{"Tags":{},"Unused":' + "[" * 100000 + "]" * 100000 + "}").encode(), 400, 3,
            "AdvancedRest.MaxSequenceDepth (16)", core={V110: CRASH, V113: CRASH}),  # the core from ~1000
    Hostile("elements-20000", json.dumps({"Tags": {"ReferencedStudySequence": [
        {"ReferencedSOPClassUID": "1.2"}] * 20000}}).encode(), 400, 3, "AdvancedRest.MaxElements (10000)",
            core={V110: 200, V113: 200}),
    Hostile("instances-1001", json.dumps({"Tags": {}, "Content": [TINY_PNG] * 1001}).encode(), 400, 3,
            "AdvancedRest.MaxInstancesPerRequest (1000)", core={V110: 200, V113: 200}),
    Hostile("png-13000x13000-rgba16", content("image/png", forged_png(13000, 13000)), 400, 3,
            "AdvancedRest.MaxImageBytes (268435456)", core={V110: (500, 2), V113: (400, 15)}),
    Hostile("jpeg-20000x8000", content("image/jpeg", forged_jpeg(20000, 8000)), 400, 3,
            "AdvancedRest.MaxImageBytes (268435456)", core={V110: 200, V113: 200}),  # 480 MB stored
    # Content that is not what its MIME type says.
    Hostile("bmp-as-png", content("image/png", image_bytes("BMP")), 400, 15, compare=True),
    Hostile("gif-as-png", content("image/png", image_bytes("GIF", "P")), 400, 15, compare=True),
    Hostile("tiff-as-png", content("image/png", image_bytes("TIFF")), 400, 15, compare=True),
    Hostile("ppm-as-png", content("image/png", image_bytes("PPM")), 400, 15, compare=True),
    Hostile("cmyk-jpeg-as-png", content("image/png", image_bytes("JPEG", "CMYK")), 400, 15, compare=True),
    Hostile("png-as-jpeg", content("image/jpeg", image_bytes("PNG")), 400, 15,
            core={V110: (500, -1), V113: (500, -1)}),
    Hostile("png-as-jpg", content("image/jpg", image_bytes("PNG")), 400, 15,
            core={V110: (400, 3), V113: (500, -1)}),
    # Lone surrogates in strings.
    Hostile("surrogate-tags", ('{"Tags":{"PatientName":"%s"}}' % LONE).encode(), 400, 8, compare=True),
    Hostile("surrogate-legacy", ('{"PatientName":"%s"}' % LONE).encode(), 400, 8, compare=True),
    Hostile("surrogate-private-creator", ('{"Tags":{},"PrivateCreator":"%s"}' % LONE).encode(), 400, 8,
            compare=True),
    Hostile("surrogate-sequence", ('{"Tags":{"ReferencedStudySequence":[{"ReferencedSOPClassUID":"%s"}]}}'
                                   % LONE).encode(), 400, 8, compare=True),
    Hostile("surrogate-key", b'{"Tags":{"Patient\\ud800Name":"x"}}', 400, 8, compare=True),
    Hostile("surrogate-low", b'{"Tags":{"SpecificCharacterSet":"ISO_IR 192","PatientName":"a\\udc00b"}}',
            400, 8, core={V110: 200, V113: 200}),  # the core writes ill-formed UTF-8 (ED B0 80)
    # Orthanc ids that exist nowhere are still an unknown parent.
    Hostile("parent-well-formed-unknown", json.dumps({"Parent": "01234567-89abcdef-01234567-89abcdef-01234567",
                                                      "Tags": {}}).encode(), 400, 2024, compare=True),
]


def _instances(server):
    return len(server.get("/instances").json())


def _check_refused(server, case, answer, before):
    assert answer.status_code == case.status, answer.text[:500]
    error = answer.json()
    assert (error["HttpStatus"], error["OrthancStatus"], error["Method"], error["Uri"]) == \
        (case.status, case.code, "POST", ROUTE)
    if case.names:
        assert case.names in error["Details"], error["Details"]
    assert server.get("/system").status_code == 200, "Orthanc stopped answering"
    assert _instances(server) == before, "a refused request left instances behind"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_body_is_refused(case, plugin, request):
    plugin.jobs_settled()  # the shared server: an earlier test's job must not store meanwhile
    before = _instances(plugin)
    answer = plugin.post(ROUTE, data=case.body, timeout=120)
    if case.compare:
        core = request.getfixturevalue("core")
        core_before = _instances(core)
        theirs = core.post(ROUTE, data=case.body)
        assert (theirs.status_code, theirs.json()["OrthancStatus"]) == (case.status, case.code), theirs.text
        assert _instances(core) == core_before
    _check_refused(plugin, case, answer, before)


def test_max_image_pixels_is_named_when_pixels_exceed_it(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"MaxImagePixels": 100_000_000}})
    case = Hostile("jpeg-20000x8000-pixels", content("image/jpeg", forged_jpeg(20000, 8000)), 400, 3,
                   "AdvancedRest.MaxImagePixels (100000000)")
    before = _instances(server)
    answer = server.post(ROUTE, data=case.body)
    _check_refused(server, case, answer, before)
    assert "Decompression" not in answer.json()["Details"]


def test_limits_follow_the_configuration(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"MaxSequenceDepth": 2, "MaxElements": 3,
                                                      "MaxInstancesPerRequest": 2, "MaxImageBytes": 100}})
    for case in (
        Hostile("depth-3", deep(3), 400, 3, "AdvancedRest.MaxSequenceDepth (2)"),
        Hostile("elements-4", json.dumps({"Tags": {"PatientName": "a", "PatientID": "b", "StudyID": "c",
                                                   "AccessionNumber": "d"}}).encode(), 400, 3,
                "AdvancedRest.MaxElements (3)"),
        Hostile("instances-3", json.dumps({"Tags": {}, "Content": [TINY_PNG] * 3}).encode(), 400, 3,
                "AdvancedRest.MaxInstancesPerRequest (2)"),
        Hostile("bytes-101", content("image/png", image_bytes("PNG", "L", (101, 1))), 400, 3,
                "AdvancedRest.MaxImageBytes (100)"),
    ):
        before = _instances(server)
        _check_refused(server, case, server.post(ROUTE, data=case.body), before)
    # Within the limits, the same kinds of requests are stored.
    within = {"Tags": {"ReferencedStudySequence": [{"ReferencedSOPClassUID": "1.2"}]},
              "Content": [data_uri("image/png", image_bytes("PNG", "L", (100, 1)))] * 2}
    assert server.post(ROUTE, data=json.dumps(within)).status_code == 200
