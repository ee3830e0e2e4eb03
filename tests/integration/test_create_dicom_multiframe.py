"""`MultiFrame`: a Content array of images stored as one multi-frame instance, checked as a user would:
the instance Orthanc keeps, its SOP class and frames read back with pydicom, Orthanc's own frame list."""
import base64
import io
import json
import shutil
import subprocess

import numpy
import pydicom
import pytest
from PIL import Image

ROUTE = "/tools/create-dicom"
DCIODVFY = shutil.which("dciodvfy")
GRAY_BYTE, GRAY_WORD, TRUE_COLOR = ("1.2.840.10008.5.1.4.1.1.7.2", "1.2.840.10008.5.1.4.1.1.7.3",
                                    "1.2.840.10008.5.1.4.1.1.7.4")


def data_uri(mime, data):
    return "data:%s;base64,%s" % (mime, base64.b64encode(data).decode("ascii"))


def frame(mode, seed, width=24, height=16):
    """(PNG data URI, its pixels) of a frame whose pixels depend on `seed`."""
    channels = 3 if mode == "RGB" else 1
    values = (numpy.arange(width * height * channels) * 13 + seed * 1001) % (65521 if mode == "I;16" else 251)
    shape = (height, width, 3) if channels == 3 else (height, width)
    array = values.astype("<u2" if mode == "I;16" else "u1").reshape(shape)
    out = io.BytesIO()
    Image.frombytes(mode, (width, height), array.tobytes()).save(out, "PNG")
    return data_uri("image/png", out.getvalue()), array


def jpeg(seed, mode="L", size=(32, 16)):
    out = io.BytesIO()
    Image.new(mode, size, (seed * 40) % 256 if mode == "L" else ((seed * 40) % 256, 80, 160)).save(out, "JPEG")
    return out.getvalue()


def create(server, body):
    answer = server.post(ROUTE, data=json.dumps(body))
    assert answer.status_code == 200, answer.text
    return answer.json()


def stored_file(server, instance):
    return server.get("/instances/%s/file" % instance).content


def dciodvfy_errors(data, tmp_path):
    path = tmp_path / "multiframe.dcm"
    path.write_bytes(data)
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("mode, sop_class", [("L", GRAY_BYTE), ("I;16", GRAY_WORD), ("RGB", TRUE_COLOR)],
                         ids=["gray8", "gray16", "rgb"])
def test_png_frames_make_one_instance_whose_frames_are_those_sent(plugin, mode, sop_class):
    sent = [frame(mode, seed) for seed in range(5)]
    answer = create(plugin, {"Tags": {"PatientName": "MultiFrame^%s" % mode}, "Content": [uri for uri, _ in sent],
                             "MultiFrame": True})
    assert answer["Status"] == "Success" and answer["Path"] == "/instances/%s" % answer["ID"]
    assert plugin.get("/series/%s" % answer["ParentSeries"]).json()["Instances"] == [answer["ID"]]
    ds = pydicom.dcmread(io.BytesIO(stored_file(plugin, answer["ID"])))
    assert (ds.SOPClassUID, ds.NumberOfFrames, ds.Rows, ds.Columns) == (sop_class, 5, 16, 24)
    for index, (_, array) in enumerate(sent):
        assert numpy.array_equal(ds.pixel_array[index], array), "frame %d" % index
    # Orthanc itself sees the frames
    assert plugin.get("/instances/%s/frames" % answer["ID"]).json() == [0, 1, 2, 3, 4]


def test_frames_that_differ_are_refused_and_nothing_is_stored(plugin):
    plugin.jobs_settled()  # the shared server: an earlier test's job must not store meanwhile
    before = len(plugin.get("/instances").json())
    content = [frame("L", 0)[0], frame("L", 1)[0], frame("L", 2, width=25)[0], frame("RGB", 3)[0]]
    answer = plugin.post(ROUTE, data=json.dumps({"Tags": {}, "Content": content, "MultiFrame": True}))
    assert answer.status_code == 400, answer.text
    details = answer.json()["Details"]
    assert details.startswith("Content[2]: ") and "frame 2 is 25x16 Grayscale8, frame 0 is 24x16 Grayscale8" in details
    assert len(plugin.get("/instances").json()) == before


def test_jpeg_frames_stay_compressed_one_fragment_each(plugin):
    sent = [jpeg(seed) for seed in range(4)]
    answer = create(plugin, {"Tags": {}, "Content": [data_uri("image/jpeg", data) for data in sent],
                             "MultiFrame": True, "Encapsulate": True})
    ds = pydicom.dcmread(io.BytesIO(stored_file(plugin, answer["ID"])))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert (ds.SOPClassUID, ds.NumberOfFrames) == (GRAY_BYTE, 4)
    table, *fragments = pydicom.encaps.generate_fragments(ds.PixelData)
    # the offset table, then one fragment per frame, each the JPEG as sent (padded to an even length)
    assert len(fragments) == 4 and len(table) == 16
    assert [bytes(f[:len(data)]) for f, data in zip(fragments, sent)] == sent
    offsets = pydicom.encaps.parse_basic_offsets(io.BytesIO(ds.PixelData))
    assert offsets[0] == 0 and len(offsets) == 4


def test_a_cine_loop_as_a_job(plugin):
    content = [frame("RGB", seed)[0] for seed in range(3)]
    job = create(plugin, {"Tags": {"PatientName": "MultiFrame^Job", "CineRate": "25"}, "Content": content,
                          "MultiFrame": True, "Asynchronous": True})
    done = plugin.get("/jobs/%s/wait" % job["ID"], params={"timeout": 60}, timeout=90).json()
    assert done["State"] == "Success", done
    assert done["Type"] == "CreateDicom"
    found = plugin.post("/tools/find", data=json.dumps({"Level": "Instance", "Query": {"PatientName": "MultiFrame^Job"}}))
    (instance,) = found.json()
    ds = pydicom.dcmread(io.BytesIO(stored_file(plugin, instance)))
    assert (ds.NumberOfFrames, ds.SOPClassUID) == (3, TRUE_COLOR)
    assert (float(ds.FrameTime), int(ds.CineRate), ds.FrameIncrementPointer) == (40.0, 25, 0x00181063)


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian's dicom3tools) is not installed")
@pytest.mark.parametrize("content, extra, sop_class", [
    ([frame("L", seed)[0] for seed in range(3)], {}, GRAY_BYTE),
    ([frame("I;16", seed)[0] for seed in range(3)], {"Tags": {"FrameTime": "40"}}, GRAY_WORD),
    ([frame("RGB", seed)[0] for seed in range(3)], {"Tags": {"CineRate": "30"}}, TRUE_COLOR),
    ([data_uri("image/jpeg", jpeg(seed, "RGB")) for seed in range(3)], {"Encapsulate": True}, TRUE_COLOR),
], ids=["gray8-pages", "gray16-cine", "rgb-cine", "jpeg-rgb"])
def test_strict_multi_frame_is_clean_under_dciodvfy(plugin, tmp_path, content, extra, sop_class):
    body = dict({"Tags": {"PatientName": "Strict^MultiFrame"}, "Content": content, "MultiFrame": True,
                 "Strict": True}, **{k: v for k, v in extra.items() if k != "Tags"})
    body["Tags"].update(extra.get("Tags", {}))
    data = stored_file(plugin, create(plugin, body)["ID"])
    assert pydicom.dcmread(io.BytesIO(data)).SOPClassUID == sop_class
    assert dciodvfy_errors(data, tmp_path) == []
