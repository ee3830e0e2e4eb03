"""`MultiFrame`: a Content array of images -> one multi-frame instance, read back with pydicom."""
import base64
import dataclasses
import io
import json
import struct
import zlib

import numpy
import pydicom
import pytest
from PIL import Image

from advanced_rest.dicomize import builder, request
from advanced_rest.errors import BadRequest, LimitExceeded, NoPayload, UnsupportedFormat
from test_builder import environment


def _uri(mime, data):
    return "data:%s;base64,%s" % (mime, base64.b64encode(data).decode())


def frame(mode, seed, size=(5, 3)):
    """(PNG data URI, the pixels as a numpy array) of a small image whose pixels depend on `seed`."""
    width, height = size
    channels = 3 if mode == "RGB" else 1
    values = (numpy.arange(width * height * channels) * 7 + seed * 11) % (60000 if mode == "I;16" else 250)
    if mode == "I;16":
        array = values.astype("<u2").reshape(height, width)
        image = Image.frombytes("I;16", size, array.tobytes())
    else:
        array = values.astype("u1").reshape((height, width, 3) if channels == 3 else (height, width))
        image = Image.frombytes(mode, size, array.tobytes())
    out = io.BytesIO()
    image.save(out, "PNG")
    return _uri("image/png", out.getvalue()), array


def jpeg(mode="L", size=(8, 8)):
    out = io.BytesIO()
    Image.new(mode, size, 90).save(out, "JPEG")
    return out.getvalue()


def build(body, env=None):
    files = builder.build(request.parse(json.dumps(body).encode()), env or environment())
    assert len(files) == 1
    return pydicom.dcmread(io.BytesIO(files[0]))


@pytest.mark.parametrize("mode, sop_class", [
    ("L", "1.2.840.10008.5.1.4.1.1.7.2"), ("I;16", "1.2.840.10008.5.1.4.1.1.7.3"), ("RGB", "1.2.840.10008.5.1.4.1.1.7.4"),
], ids=["gray8", "gray16", "rgb"])
def test_frames_come_back_as_sent(mode, sop_class):
    sent = [frame(mode, seed) for seed in range(4)]
    ds = build({"Tags": {}, "Content": [uri for uri, _ in sent], "MultiFrame": True})
    assert (ds.SOPClassUID, ds.file_meta.MediaStorageSOPClassUID) == (sop_class, sop_class)
    assert ds.NumberOfFrames == 4
    assert (ds.Rows, ds.Columns) == (3, 5)
    for index, (_, array) in enumerate(sent):
        assert numpy.array_equal(ds.pixel_array[index], array)
    assert ds.FrameIncrementPointer == 0x00182001 and ds.PageNumberVector == [1, 2, 3, 4]
    assert "ImagesInAcquisition" not in ds and "InstanceNumber" not in ds


def test_one_data_uri_makes_one_frame():
    uri, array = frame("L", 3)
    ds = build({"Tags": {}, "Content": uri, "MultiFrame": True})
    assert ds.NumberOfFrames == 1 and numpy.array_equal(ds.pixel_array, array)


@pytest.mark.parametrize("tags, frame_time, cine_rate", [
    ({"FrameTime": "40"}, 40.0, 25), ({"CineRate": "50"}, 20.0, 50), ({"FrameTime": "33.3", "CineRate": "30"}, 33.3, 30),
], ids=["frame-time", "cine-rate", "both"])
def test_a_cine_loop_has_its_pace(tags, frame_time, cine_rate):
    ds = build({"Tags": tags, "Content": [frame("L", 1)[0], frame("L", 2)[0]], "MultiFrame": True})
    assert ds.FrameIncrementPointer == 0x00181063
    assert (float(ds.FrameTime), int(ds.CineRate)) == (frame_time, cine_rate)
    assert "PageNumberVector" not in ds


def test_the_request_sop_class_is_kept():
    ds = build({"Tags": {"SOPClassUID": "1.2.3"}, "Content": [frame("L", 1)[0]], "MultiFrame": True})
    assert ds.SOPClassUID == "1.2.3"


def test_encapsulated_jpeg_frames_stay_one_fragment_each():
    frames = [jpeg("L"), jpeg("L", (8, 8))[:-2] + b"\xff\xd9", jpeg("L")]
    ds = build({"Tags": {}, "Content": [_uri("image/jpeg", data) for data in frames], "MultiFrame": True,
                "Encapsulate": True})
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert ds.NumberOfFrames == 3 and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.2"
    fragments = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=3))
    assert [bytes(f[:len(sent)]) for f, sent in zip(fragments, frames)] == frames
    offsets = pydicom.encaps.parse_basic_offsets(io.BytesIO(ds.PixelData))  # the Basic Offset Table
    assert len(offsets) == 3 and offsets[0] == 0
    assert (ds.LossyImageCompression, ds.LossyImageCompressionMethod) == ("01", "ISO_10918_1")


def test_colour_jpeg_frames_are_true_color():
    ds = build({"Tags": {}, "Content": [_uri("image/jpeg", jpeg("RGB"))] * 2, "MultiFrame": True, "Encapsulate": True})
    assert (ds.SOPClassUID, ds.PhotometricInterpretation) == ("1.2.840.10008.5.1.4.1.1.7.4", "YBR_FULL_422")


@pytest.mark.parametrize("second, says", [
    (frame("L", 1, (6, 3))[0], "6x3 Grayscale8"),
    (frame("RGB", 1)[0], "5x3 RGB24"),
    (frame("I;16", 1)[0], "5x3 Grayscale16"),
], ids=["size", "colour", "depth"])
def test_a_frame_unlike_the_first_is_named(second, says):
    with pytest.raises(BadRequest) as raised:
        build({"Tags": {}, "Content": [frame("L", 0)[0], frame("L", 1)[0], second], "MultiFrame": True})
    assert raised.value.http_status == 400
    assert raised.value.details.startswith("Content[2]: MultiFrame: frame 2 is %s, frame 0 is 5x3 Grayscale8" % says)


def test_all_frames_together_are_bounded():
    env = dataclasses.replace(environment(), max_image_bytes=100)
    with pytest.raises(LimitExceeded, match=r"7 frames of 5x3 pixels decode to 105 bytes, beyond "
                                            r"AdvancedRest.MaxImageBytes \(100\)"):
        build({"Tags": {}, "Content": [frame("L", 0)[0]] * 7, "MultiFrame": True}, env)
    assert build({"Tags": {}, "Content": [frame("L", 0)[0]] * 6, "MultiFrame": True}, env).NumberOfFrames == 6


@pytest.mark.parametrize("item, error, says", [
    ({"Content": frame("L", 0)[0], "Tags": {"InstanceNumber": "2"}}, BadRequest, "no Tags of their own"),
    ({"Tags": {}}, NoPayload, None),
    ("data:application/pdf;base64,JVBERi0=", UnsupportedFormat, "must be an image"),
    (frame("RGB", 0)[0], None, None),
], ids=["own-tags", "no-content", "pdf", "ok"])
def test_items_are_images_only(item, error, says):
    body = {"Tags": {}, "Content": [frame("RGB", 0)[0], item], "MultiFrame": True}
    if error is None:
        assert build(body).NumberOfFrames == 2
        return
    with pytest.raises(error) as raised:
        build(body)
    assert raised.value.details.startswith("Content[1]: ")
    if says:
        assert says in raised.value.details


def _rgb48_png(width=2, height=2):
    """A 16-bit RGB PNG (Pillow writes none)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\0" + bytes(width * 6) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_sixteen_bit_colour_has_no_multi_frame_class():
    with pytest.raises(UnsupportedFormat, match="no multi-frame Secondary Capture SOP Class") as raised:
        build({"Tags": {}, "Content": [_uri("image/png", _rgb48_png())] * 2, "MultiFrame": True})
    assert raised.value.http_status == 415


def test_encapsulate_takes_jpeg_frames_only():
    with pytest.raises(UnsupportedFormat) as raised:
        build({"Tags": {}, "Content": [_uri("image/jpeg", jpeg()), frame("L", 0)[0]], "MultiFrame": True,
               "Encapsulate": True})
    assert raised.value.details == "Content[1]: Only JPEG (and JPEG 2000, always kept) can be encapsulated, not image/png"


def test_multi_frame_without_content_is_refused():
    with pytest.raises(BadRequest, match="MultiFrame needs images in Content"):
        build({"Tags": {}, "MultiFrame": True})


def test_strict_multi_frame_has_its_modules():
    ds = build({"Tags": {}, "Content": [frame("L", 0)[0]] * 2, "MultiFrame": True, "Strict": True})
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.2"
    assert (ds.BurnedInAnnotation, ds.PresentationLUTShape, ds.RescaleType) == ("YES", "IDENTITY", "US")
    assert (ds.RescaleIntercept, ds.RescaleSlope) == (0, 1)
    rgb = build({"Tags": {}, "Content": [frame("RGB", 0)[0]] * 2, "MultiFrame": True, "Strict": True})
    assert rgb.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.4" and "RescaleSlope" not in rgb


def jp2(mode, seed, irreversible=False, size=(6, 4)):
    """A JPEG 2000 codestream (Pillow's OpenJPEG) of a small image whose pixels depend on `seed`."""
    width, height = size
    values = (numpy.arange(width * height * (3 if mode == "RGB" else 1)) * 5 + seed * 13) % 200
    image = Image.frombytes(mode, size, values.astype("u1").tobytes())
    out = io.BytesIO()
    image.save(out, "JPEG2000", no_jp2=True, irreversible=irreversible, **({"mct": 1} if mode == "RGB" else {}))
    return out.getvalue()


@pytest.mark.parametrize("mode, irreversible, syntax, photometric, sop_class", [
    ("L", False, "1.2.840.10008.1.2.4.90", "MONOCHROME2", "1.2.840.10008.5.1.4.1.1.7.2"),
    ("RGB", True, "1.2.840.10008.1.2.4.91", "YBR_ICT", "1.2.840.10008.5.1.4.1.1.7.4"),
], ids=["gray-lossless", "rgb-lossy"])
def test_jpeg2000_frames_stay_as_they_come_one_fragment_each(mode, irreversible, syntax, photometric, sop_class):
    sent = [jp2(mode, seed, irreversible) for seed in range(3)]
    ds = build({"Tags": {}, "Content": [_uri("image/jp2", data) for data in sent], "MultiFrame": True})
    assert (ds.file_meta.TransferSyntaxUID, ds.SOPClassUID, ds.NumberOfFrames) == (syntax, sop_class, 3)
    assert (ds.Rows, ds.Columns, ds.PhotometricInterpretation, ds.BitsStored) == (4, 6, photometric, 8)
    fragments = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=3))
    assert [bytes(f[:len(data)]) for f, data in zip(fragments, sent)] == sent
    assert ds.get("LossyImageCompression") == ("01" if irreversible else None)


def test_a_jpeg2000_frame_unlike_the_first_is_named():
    with pytest.raises(BadRequest, match="frame 1 is .*compressed.*frame 0 is") as raised:
        build({"Tags": {}, "Content": [_uri("image/jp2", jp2("L", 0)), _uri("image/jp2", jp2("L", 1, True))],
               "MultiFrame": True})
    assert raised.value.details.startswith("Content[1]: ")
