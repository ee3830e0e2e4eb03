"""`Strict`: conformant instances that Debian's dciodvfy (dicom3tools) accepts without error."""
import base64
import io
import json
import shutil
import subprocess

import pydicom
import pytest

from create_dicom_cases import MTL_TEXT, OBJ_TEXT, STL_ASCII, jpeg_bytes, pdf_bytes, png_data_uri

DCIODVFY = shutil.which("dciodvfy")


def _uri(mime, data):
    return "data:%s;base64,%s" % (mime, base64.b64encode(data).decode())


CONTENTS = {
    "png-gray": (png_data_uri("L"), {}, "1.2.840.10008.5.1.4.1.1.7"),
    "png-rgb": (png_data_uri("RGB"), {}, "1.2.840.10008.5.1.4.1.1.7"),
    "jpeg-decoded": (_uri("image/jpeg", jpeg_bytes("RGB")), {}, "1.2.840.10008.5.1.4.1.1.7"),
    "jpeg-encapsulated": (_uri("image/jpeg", jpeg_bytes("L")), {"Encapsulate": True}, "1.2.840.10008.5.1.4.1.1.7"),
    "pdf": (_uri("application/pdf", pdf_bytes()), {}, "1.2.840.10008.5.1.4.1.1.104.1"),
    "stl": (_uri("model/stl", STL_ASCII), {}, "1.2.840.10008.5.1.4.1.1.104.3"),
}


def _verify(data, tmp_path):
    path = tmp_path / "strict.dcm"
    path.write_bytes(data)
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian's dicom3tools) is not installed")
@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_strict_instances_pass_dciodvfy(plugin, tmp_path, name):
    content, extra, sop_class = CONTENTS[name]
    body = dict({"Tags": {"PatientName": "Strict^Test"}, "Content": content, "Strict": True}, **extra)
    answer = plugin.post("/tools/create-dicom", data=json.dumps(body))
    assert answer.status_code == 200, answer.text
    data = plugin.get("/instances/%s/file" % answer.json()["ID"]).content
    assert pydicom.dcmread(io.BytesIO(data)).SOPClassUID == sop_class
    assert _verify(data, tmp_path) == []


def test_default_stays_like_the_core_and_strict_keeps_requested_values(plugin):
    default = plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Content": png_data_uri("L")}))
    data = plugin.get("/instances/%s/file" % default.json()["ID"]).content
    ds = pydicom.dcmread(io.BytesIO(data))
    # sendable (README, "Sendable by default"), yet not completed: Strict alone adds the IOD's other attributes
    assert (ds.SOPClassUID, ds.Modality) == ("1.2.840.10008.5.1.4.1.1.7", "OT")
    assert "ConversionType" not in ds and "PatientOrientation" not in ds
    strict = plugin.post("/tools/create-dicom", data=json.dumps(
        {"Tags": {"Modality": "XC", "ConversionType": "DI"}, "Content": png_data_uri("L"), "Strict": True}))
    ds = pydicom.dcmread(io.BytesIO(plugin.get("/instances/%s/file" % strict.json()["ID"]).content))
    assert (ds.Modality, ds.ConversionType) == ("XC", "DI")


def test_strict_from_the_configuration(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"StrictDicom": True}})
    answer = server.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Content": png_data_uri("L")}))
    ds = pydicom.dcmread(io.BytesIO(server.get("/instances/%s/file" % answer.json()["ID"]).content))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    off = server.post("/tools/create-dicom", data=json.dumps(
        {"Tags": {}, "Content": png_data_uri("L"), "Strict": False}))
    off_file = server.get("/instances/%s/file" % off.json()["ID"]).content
    assert "ConversionType" not in pydicom.dcmread(io.BytesIO(off_file))


def test_strict_without_content_is_refused_and_stores_nothing(plugin):
    plugin.jobs_settled()  # the shared server: an earlier test's job must not store meanwhile
    before = len(plugin.get("/instances").json())
    answer = plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Strict": True}))
    assert answer.status_code == 400 and "Strict" in answer.json()["Details"]
    assert len(plugin.get("/instances").json()) == before


@pytest.mark.parametrize("mime, data, sop_class", [
    ("model/obj", OBJ_TEXT, "1.2.840.10008.5.1.4.1.1.104.4"),
    ("model/mtl", MTL_TEXT, "1.2.840.10008.5.1.4.1.1.104.5"),
], ids=["obj", "mtl"])
def test_strict_obj_and_mtl_have_the_model_modules(plugin, mime, data, sop_class):
    # Debian 12's dciodvfy predates these two IODs: check the attributes the STL one needs.
    body = {"Tags": {}, "Content": _uri(mime, data), "Strict": True}
    answer = plugin.post("/tools/create-dicom", data=json.dumps(body))
    ds = pydicom.dcmread(io.BytesIO(plugin.get("/instances/%s/file" % answer.json()["ID"]).content))
    assert (ds.SOPClassUID, ds.Modality) == (sop_class, "M3D")
    assert ds.FrameOfReferenceUID and ds.Manufacturer and ds.SoftwareVersions
    assert ds.MeasurementUnitsCodeSequence[0].CodeValue == "mm"
    assert ds.EncapsulatedDocumentLength == len(data)
