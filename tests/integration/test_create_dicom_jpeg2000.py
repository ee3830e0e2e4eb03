"""JPEG 2000 kept as it comes: codestreams and JP2 files made here by Pillow (OpenJPEG), stored by create-dicom
and read back as a user would: the transfer syntax of the wavelet, the image's own size, depth and colour,
the codestream sent, unchanged, in the Pixel Data, its pixels decoded again, and Orthanc's own rendering."""
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
LOSSLESS, LOSSY = "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

# name -> (Pillow mode, Pillow's JPEG 2000 options, transfer syntax, photometric interpretation)
IMAGES = {
    "gray-lossless": ("L", {"irreversible": False}, LOSSLESS, "MONOCHROME2"),
    "gray-lossy": ("L", {"irreversible": True}, LOSSY, "MONOCHROME2"),
    "gray16-lossless": ("I;16", {"irreversible": False}, LOSSLESS, "MONOCHROME2"),
    "rgb-lossless": ("RGB", {"irreversible": False, "mct": 1}, LOSSLESS, "YBR_RCT"),
    "rgb-lossy": ("RGB", {"irreversible": True, "mct": 1}, LOSSY, "YBR_ICT"),
    "rgb-no-transform": ("RGB", {"irreversible": False}, LOSSLESS, "RGB"),
}


def pixels(mode, width=48, height=32):
    """A test picture of `mode`: gradients and a square, as a numpy array."""
    y, x = numpy.mgrid[0:height, 0:width]
    if mode == "I;16":
        return ((x * 1200 + y * 300) % 65536).astype("<u2")
    gray = ((x * 5 + y * 3) % 256).astype("u1")
    gray[8:20, 10:30] = 250
    if mode == "L":
        return gray
    return numpy.dstack([gray, ((x * 7) % 256).astype("u1"), ((y * 9) % 256).astype("u1")])


def encode(mode, options, jp2):
    array = pixels(mode)
    out = io.BytesIO()
    Image.frombytes(mode, (array.shape[1], array.shape[0]), array.tobytes()).save(out, "JPEG2000", no_jp2=not jp2,
                                                                                 **options)
    return out.getvalue(), array


def data_uri(data):
    return "data:image/jp2;base64," + base64.b64encode(data).decode("ascii")


def create(server, body):
    answer = server.post(ROUTE, data=json.dumps(body))
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def codestream_of(sent):
    """What DICOM keeps of what was sent: a codestream as it is; of a JP2 file, the codestream its jp2c box
    holds (Pillow writes it last), without the file's boxes."""
    return sent[sent.index(b"\xff\x4f\xff\x51"):]


def can_decode_jpeg2000(server):
    """Whether this Orthanc decodes JPEG 2000 itself: its core does not; the GDCM plugin does."""
    return any("gdcm" in name.lower() for name in server.get("/plugins").json())


@pytest.mark.parametrize("jp2", [False, True], ids=["j2k", "jp2"])
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_jpeg2000_is_stored_as_it_comes(plugin, name, jp2):
    mode, options, transfer_syntax, photometric = IMAGES[name]
    sent, array = encode(mode, options, jp2)
    instance = create(plugin, {"Tags": {"PatientName": "Jpeg2000^%s" % name}, "Content": data_uri(sent)})
    assert plugin.get("/instances/%s/metadata/TransferSyntax" % instance).text == transfer_syntax
    ds = pydicom.dcmread(io.BytesIO(plugin.get("/instances/%s/file" % instance).content))
    assert ds.file_meta.TransferSyntaxUID == transfer_syntax
    samples, bits = (3, 8) if mode == "RGB" else (1, 16 if mode == "I;16" else 8)
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation) == (32, 48, samples, photometric)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (bits, bits, bits - 1, 0)
    assert ds.get("LossyImageCompression") == ("01" if transfer_syntax == LOSSY else None)
    assert (ds.SOPClassUID, ds.Modality) == (SECONDARY_CAPTURE, "OT")  # sendable, see test_create_dicom_send.py
    table, *fragments = pydicom.encaps.generate_fragments(ds.PixelData)
    assert len(fragments) == 1
    kept = codestream_of(sent)
    assert bytes(fragments[0][:len(kept)]) == kept and bytes(fragments[0][len(kept):]) in (b"", b"\0")
    decoded = ds.pixel_array  # pydicom, through Pillow's OpenJPEG
    if transfer_syntax == LOSSLESS:
        assert numpy.array_equal(decoded, array)
    else:
        assert numpy.abs(decoded.astype(int) - array.astype(int)).mean() < 3
    assert plugin.get("/instances/%s/frames" % instance).json() == [0]
    if can_decode_jpeg2000(plugin):
        preview = plugin.get("/instances/%s/frames/0/preview" % instance)
        assert (preview.status_code, preview.headers["Content-Type"]) == (200, "image/png")


def test_orthanc_renders_it_where_it_decodes_jpeg2000(plugin):
    if not can_decode_jpeg2000(plugin):
        pytest.skip("this Orthanc has no JPEG 2000 decoder (its core has none; the GDCM plugin is not loaded)")
    sent, _ = encode("RGB", {"irreversible": True, "mct": 1}, True)
    preview = plugin.get("/instances/%s/frames/0/preview" % create(plugin, {"Tags": {}, "Content": data_uri(sent)}))
    assert (preview.status_code, preview.headers["Content-Type"]) == (200, "image/png")
    assert Image.open(io.BytesIO(preview.content)).size == (48, 32)


@pytest.mark.parametrize("damage", ["truncated", "no-eoc", "forged-size", "jp2-truncated", "jp2-header-lies"])
def test_a_damaged_stream_is_refused_and_nothing_stored(plugin, damage):
    j2k, _ = encode("RGB", {"irreversible": False}, False)
    jp2, _ = encode("RGB", {"irreversible": False}, True)
    at = jp2.index(b"ihdr") + 4
    body = {"truncated": j2k[:len(j2k) // 2], "no-eoc": j2k[:-2],
            "forged-size": j2k[:8] + bytes(4) + j2k[12:],  # Xsiz 0: no pixels
            "jp2-truncated": jp2[:-10],
            "jp2-header-lies": jp2[:at] + (999).to_bytes(4, "big") + jp2[at + 4:]}[damage]
    plugin.jobs_settled()  # the shared server: an earlier test's job must not store meanwhile
    before = len(plugin.get("/instances").json())
    answer = plugin.post(ROUTE, data=json.dumps({"Tags": {}, "Content": data_uri(body)}))
    assert answer.status_code == 400, answer.text
    assert answer.json()["OrthancStatus"] == 15 and answer.json()["Details"].startswith(("JPEG 2000", "JP2"))
    assert len(plugin.get("/instances").json()) == before


def test_four_components_are_unsupported(plugin):
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(out, "JPEG2000")
    answer = plugin.post(ROUTE, data=json.dumps({"Tags": {}, "Content": data_uri(out.getvalue())}))
    assert answer.status_code == 415 and "4 components" in answer.json()["Details"]


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian's dicom3tools) is not installed")
@pytest.mark.parametrize("frames", [None, 2], ids=["one", "multi-frame"])
@pytest.mark.parametrize("name", ["gray-lossless", "rgb-lossy", "gray16-lossless"])
def test_strict_jpeg2000_is_clean_under_dciodvfy(plugin, tmp_path, name, frames):
    mode, options, _, _ = IMAGES[name]
    sent, _ = encode(mode, options, True)
    content = data_uri(sent) if frames is None else [data_uri(sent)] * frames
    instance = create(plugin, {"Tags": {"PatientName": "Strict^Jpeg2000"}, "Content": content, "Strict": True,
                               "MultiFrame": frames is not None})
    path = tmp_path / "jpeg2000.dcm"
    path.write_bytes(plugin.get("/instances/%s/file" % instance).content)
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    if frames is None:
        assert "SCImage" in result.stdout + result.stderr  # the IOD dciodvfy checked it against
    else:  # one of the multi-frame SC IODs, by its SOP class (dciodvfy names none for them)
        assert pydicom.dcmread(str(path)).SOPClassUID.startswith("1.2.840.10008.5.1.4.1.1.7.")
    assert [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")] == []


@pytest.mark.parametrize("name", ["gray-lossless", "rgb-lossy", "gray16-lossless"])
def test_jpeg2000_frames_make_one_multi_frame_instance_as_they_come(plugin, name):
    mode, options, transfer_syntax, photometric = IMAGES[name]
    sent = [encode(mode, options, jp2=index % 2 == 1) for index in range(3)]  # codestreams and JP2 files mixed
    instance = create(plugin, {"Tags": {"PatientName": "Jpeg2000^Frames"}, "MultiFrame": True,
                               "Content": [data_uri(data) for data, _ in sent]})
    ds = pydicom.dcmread(io.BytesIO(plugin.get("/instances/%s/file" % instance).content))
    assert (ds.file_meta.TransferSyntaxUID, ds.NumberOfFrames, ds.PhotometricInterpretation) == (
        transfer_syntax, 3, photometric)
    assert ds.SOPClassUID == {"L": "1.2.840.10008.5.1.4.1.1.7.2", "I;16": "1.2.840.10008.5.1.4.1.1.7.3",
                              "RGB": "1.2.840.10008.5.1.4.1.1.7.4"}[mode]
    frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=3))
    for frame, (data, _) in zip(frames, sent):
        kept = codestream_of(data)
        assert bytes(frame[:len(kept)]) == kept
    decoded = ds.pixel_array
    for index, (_, array) in enumerate(sent):
        if transfer_syntax == LOSSLESS:
            assert numpy.array_equal(decoded[index], array)
        else:
            assert numpy.abs(decoded[index].astype(int) - array.astype(int)).mean() < 3
    assert plugin.get("/instances/%s/frames" % instance).json() == [0, 1, 2]


def test_jpeg2000_frames_unlike_each_other_are_refused_and_nothing_stored(plugin):
    lossless, _ = encode("L", {"irreversible": False}, False)
    lossy, _ = encode("L", {"irreversible": True}, False)
    plugin.jobs_settled()
    before = len(plugin.get("/instances").json())
    answer = plugin.post(ROUTE, data=json.dumps({"Tags": {}, "MultiFrame": True,
                                                 "Content": [data_uri(lossless), data_uri(lossy)]}))
    assert answer.status_code == 400, answer.text
    assert answer.json()["Details"].startswith("Content[1]: MultiFrame: frame 1 is")
    assert len(plugin.get("/instances").json()) == before
