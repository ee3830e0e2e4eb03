"""Sendable by default: every kind of instance create-dicom makes, without Strict and without SOPClassUID or
Modality in Tags, goes to a PACS (a second Orthanc) with POST /modalities/{pacs}/store, and arrives there
as it was stored: same SOP class, transfer syntax and pixel data."""
import io
import json
import shutil
import subprocess

import pydicom
import pytest
from PIL import Image

from create_dicom_cases import STL_BINARY, data_uri, jpeg_bytes, pdf_bytes, png_data_uri
from servers import Server, UrlLeg

ROUTE = "/tools/create-dicom"
FFMPEG = shutil.which("ffmpeg")
SECONDARY_CAPTURE, RAW_DATA = "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.66"


def jpeg2000(irreversible):
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 40, 90)).save(out, "JPEG2000", irreversible=irreversible, mct=1)
    return data_uri("image/jp2", out.getvalue())


def video(tmp_path_factory, options, suffix):
    path = tmp_path_factory.mktemp("send") / ("video" + suffix)
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=25:duration=1"] + options + [str(path)], check=True, timeout=120)
    return path.read_bytes()


# kind -> (body without SOPClassUID and Modality, the SOP class the PACS must receive); "VIDEO:..." made below
KINDS = {
    "no-content": ({"Tags": {"PatientName": "Send^Nothing"}}, RAW_DATA),
    "legacy-body": ({"PatientName": "Send^Legacy", "PixelData": png_data_uri("L")}, SECONDARY_CAPTURE),
    "png-gray": ({"Tags": {}, "Content": png_data_uri("L")}, SECONDARY_CAPTURE),
    "png-rgb": ({"Tags": {}, "Content": png_data_uri("RGB")}, SECONDARY_CAPTURE),
    "jpeg-encapsulated": ({"Tags": {}, "Content": data_uri("image/jpeg", jpeg_bytes("RGB")), "Encapsulate": True},
                          SECONDARY_CAPTURE),
    "pdf": ({"Tags": {}, "Content": data_uri("application/pdf", pdf_bytes())}, "1.2.840.10008.5.1.4.1.1.104.1"),
    "stl": ({"Tags": {}, "Content": data_uri("model/stl", STL_BINARY)}, "1.2.840.10008.5.1.4.1.1.104.3"),
    "multi-frame": ({"Tags": {}, "Content": [png_data_uri("RGB")] * 3, "MultiFrame": True},
                    "1.2.840.10008.5.1.4.1.1.7.4"),
    "jpeg2000-lossless": ({"Tags": {}, "Content": jpeg2000(False)}, SECONDARY_CAPTURE),
    "jpeg2000-lossy": ({"Tags": {}, "Content": jpeg2000(True)}, SECONDARY_CAPTURE),
    "video-h264": ("VIDEO:h264", "1.2.840.10008.5.1.4.1.1.77.1.4.1"),
    "video-hevc": ("VIDEO:hevc", "1.2.840.10008.5.1.4.1.1.77.1.4.1"),
    "video-mpeg2": ("VIDEO:mpeg2", "1.2.840.10008.5.1.4.1.1.77.1.4.1"),
}
VIDEOS = {
    "h264": (["-c:v", "libx264", "-profile:v", "high", "-level", "4.1", "-pix_fmt", "yuv420p"], ".mp4", "video/mp4"),
    "hevc": (["-c:v", "libx265", "-x265-params", "log-level=none", "-pix_fmt", "yuv420p", "-tag:v", "hvc1"], ".mp4",
             "video/mp4"),
    "mpeg2": (["-c:v", "mpeg2video", "-pix_fmt", "yuv420p", "-f", "mpeg"], ".mpg", "video/mpeg"),
}


@pytest.fixture(scope="module")
def sender_and_pacs(leg):
    """(a plugin Orthanc whose modality "pacs" is the other, an Orthanc without the plugin as that PACS)."""
    if isinstance(leg, UrlLeg):
        pytest.skip("the url leg runs against a given Orthanc: this test starts a PACS of its own")
    with Server(leg, plugin=False, name="%s-pacs" % leg.name) as pacs:
        config = {"DicomAet": "SENDER", "DicomModalities": {"pacs": [pacs.aet, "127.0.0.1", pacs.dicom_port]}}
        with Server(leg, plugin=True, config=config, name="%s-sender" % leg.name) as sender:
            yield sender, pacs


def pixel_data(server, instance):
    ds = pydicom.dcmread(io.BytesIO(server.get("/instances/%s/file" % instance).content))
    return ds.SOPClassUID, ds.Modality, ds.file_meta.TransferSyntaxUID, ds.get("PixelData", ds.get(
        "EncapsulatedDocument"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_reaches_the_pacs(sender_and_pacs, tmp_path_factory, kind):
    sender, pacs = sender_and_pacs
    body, sop_class = KINDS[kind]
    if isinstance(body, str):
        if FFMPEG is None:
            pytest.skip("ffmpeg (Debian's ffmpeg) is not installed")
        options, suffix, mime = VIDEOS[body.split(":")[1]]
        body = {"Tags": {}, "Content": data_uri(mime, video(tmp_path_factory, options, suffix))}
    answer = sender.post(ROUTE, data=json.dumps(body))
    assert answer.status_code == 200, answer.text
    instance = answer.json()["ID"]
    made = pixel_data(sender, instance)
    assert made[:2] == (sop_class, {"pdf": "OT", "stl": "M3D", "video-h264": "XC", "video-hevc": "XC",
                                    "video-mpeg2": "XC"}.get(kind, "OT"))
    sent = sender.post("/modalities/pacs/store", data=json.dumps({"Resources": [instance]}), timeout=120)
    assert sent.status_code == 200, sent.text
    # Orthanc's ids come from the DICOM identifiers: the PACS knows the instance by the same id
    assert pacs.get("/instances/%s" % instance).status_code == 200
    assert pixel_data(pacs, instance) == made  # as stored: not transcoded on the way


def test_a_series_reaches_the_pacs(sender_and_pacs):
    sender, pacs = sender_and_pacs
    answer = sender.post(ROUTE, data=json.dumps({"Tags": {}, "Content": [png_data_uri("L"), png_data_uri("RGB")]}))
    assert answer.status_code == 200, answer.text
    series = answer.json()["ID"]
    sent = sender.post("/modalities/pacs/store", data=json.dumps({"Resources": [series]}), timeout=120)
    assert sent.status_code == 200, sent.text
    assert sorted(pacs.get("/series/%s" % series).json()["Instances"]) == \
        sorted(sender.get("/series/%s" % series).json()["Instances"])


def test_the_core_alone_makes_what_a_pacs_refuses(sender_and_pacs):
    """Why the plugin fills them: the core's own create-dicom of a PNG has no SOP class to send."""
    sender, pacs = sender_and_pacs
    made = pacs.post(ROUTE, data=json.dumps({"Tags": {}, "Content": png_data_uri("L")}))
    assert made.status_code == 200
    ds = pydicom.dcmread(io.BytesIO(pacs.get("/instances/%s/file" % made.json()["ID"]).content))
    assert "SOPClassUID" not in ds and "Modality" not in ds

