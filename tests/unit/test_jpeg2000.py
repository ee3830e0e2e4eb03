"""dicomize.jpeg2000: codestreams and JP2 files made by Pillow (OpenJPEG), read without decoding."""
import io
import struct

import numpy
import pytest
from PIL import Image

from advanced_rest.dicomize import jpeg2000
from advanced_rest.errors import BadFileFormat, UnsupportedFormat


def encode(mode="L", size=(40, 30), jp2=False, **options):
    channels = {"L": 1, "I;16": 1, "RGB": 3, "RGBA": 4}[mode]
    count = size[0] * size[1] * channels * (2 if mode == "I;16" else 1)
    image = Image.frombytes(mode, size, (numpy.arange(count) % 251).astype("u1").tobytes())
    out = io.BytesIO()
    image.save(out, "JPEG2000", no_jp2=not jp2, **options)
    return out.getvalue()


@pytest.mark.parametrize("mode, options, syntax, photometric, samples, bits", [
    ("L", {"irreversible": False}, jpeg2000.LOSSLESS, "MONOCHROME2", 1, 8),
    ("L", {"irreversible": True}, jpeg2000.LOSSY, "MONOCHROME2", 1, 8),
    ("I;16", {"irreversible": False}, jpeg2000.LOSSLESS, "MONOCHROME2", 1, 16),
    ("RGB", {"irreversible": False}, jpeg2000.LOSSLESS, "RGB", 3, 8),
    ("RGB", {"irreversible": False, "mct": 1}, jpeg2000.LOSSLESS, "YBR_RCT", 3, 8),
    ("RGB", {"irreversible": True, "mct": 1}, jpeg2000.LOSSY, "YBR_ICT", 3, 8),
], ids=["gray-53", "gray-97", "gray16-53", "rgb-53-no-mct", "rgb-rct", "rgb-ict"])
@pytest.mark.parametrize("jp2", [False, True], ids=["j2k", "jp2"])
def test_wavelet_and_transform_choose_syntax_and_photometric(mode, options, syntax, photometric, samples, bits, jp2):
    data = encode(mode, jp2=jp2, **options)
    image = jpeg2000.read(data)
    assert (image.transfer_syntax, image.photometric, image.samples, image.bits_stored) == (syntax, photometric,
                                                                                           samples, bits)
    assert (image.width, image.height, image.signed) == (40, 30, False)
    assert image.codestream.startswith(b"\xff\x4f\xff\x51") and image.codestream.endswith(b"\xff\xd9")
    if not jp2:
        assert image.codestream == data  # kept as it came
    else:
        assert image.codestream == encode(mode, **options)  # the JP2 file's codestream, without its boxes


@pytest.mark.parametrize("cut", [-1, -2, 0.5, 60], ids=["no-eoc", "cut-eoc", "half", "in-header"])
@pytest.mark.parametrize("jp2", [False, True], ids=["j2k", "jp2"])
def test_a_truncated_stream_is_a_bad_file(cut, jp2):
    data = encode("RGB", jp2=jp2)
    end = int(len(data) * cut) if isinstance(cut, float) else len(data) + cut if cut < 0 else cut
    with pytest.raises(BadFileFormat) as raised:
        jpeg2000.read(data[:end])
    assert raised.value.http_status == 400


def test_forged_headers_are_bad_files():
    data = bytearray(encode("L"))
    zero_width = bytes(data[:8]) + struct.pack(">I", 0) + bytes(data[12:])  # Xsiz = 0
    with pytest.raises(BadFileFormat, match="0x30 pixels"):
        jpeg2000.read(zero_width)
    bad_count = bytes(data[:40]) + struct.pack(">H", 3) + bytes(data[42:])  # Csiz disagrees with Lsiz
    with pytest.raises(BadFileFormat, match="SIZ"):
        jpeg2000.read(bad_count)
    with pytest.raises(BadFileFormat, match="no SOC"):
        jpeg2000.read(b"\x89PNG" + bytes(60))
    jp2 = bytearray(encode("L", jp2=True))
    at = jp2.index(b"ihdr") + 4
    jp2[at:at + 4] = struct.pack(">I", 31)  # the image header's height contradicts the codestream
    with pytest.raises(BadFileFormat, match="image header says 40x31"):
        jpeg2000.read(bytes(jp2))


def test_components_dicom_cannot_describe_are_unsupported():
    with pytest.raises(UnsupportedFormat) as raised:
        jpeg2000.read(encode("RGBA"))
    assert raised.value.http_status == 415 and "4 components" in raised.value.details
