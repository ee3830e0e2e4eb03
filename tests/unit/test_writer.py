"""dicomize/writer.py against pydicom's dcmwrite, byte for byte.

The hand-written writer is acceptable only because it writes what pydicom writes: each case is built
twice, as our writer's elements (values already encoded, unpadded) and as a pydicom Dataset (Python
values that pydicom encodes itself), and the two encodings must be equal.
"""
import io
import struct

import pydicom
import pytest
from pydicom import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

from advanced_rest.dicomize import writer
from advanced_rest.dicomize.writer import Element, Fragments
from advanced_rest.errors import BadFileFormat

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


# A case is a dict tag -> leaf or sequence, turned into both sides by _ours and _theirs.
def text(vr, value):
    """A string VR: our writer gets its ASCII bytes, pydicom the string."""
    return (vr, value.encode("ascii"), value)


def binary(vr, value):
    """An OB/OW/OF/OD/OL/OV value: the same bytes on both sides."""
    return (vr, value, value)


def unknown(value):
    """UN: pydicom writes an odd-length UN value as it is, with an odd length that PS3.5 7.1.1 forbids;
    our writer pads it with a NUL like OB. pydicom is given the padded value."""
    return ("UN", value, value + b"\0" if len(value) % 2 else value)


def numbers(vr, fmt, *values):
    """A binary number VR: our writer gets the packed bytes, pydicom the numbers."""
    packed = struct.pack("<%d%s" % (len(values), fmt), *values)
    return (vr, packed, list(values) if len(values) > 1 else values[0] if values else None)


def tags(*values):
    """AT: our writer gets group and element of each tag as two US, pydicom the tags."""
    packed = b"".join(struct.pack("<HH", tag >> 16, tag & 0xFFFF) for tag in values)
    return ("AT", packed, list(values) if len(values) > 1 else values[0] if values else None)


def sequence(*items):
    return ("SQ", list(items))


def fragments(*frames):
    return ("OB", Fragments(tuple(frames)))


def _ours(case):
    elements = {}
    for tag, spec in case.items():
        if spec[0] == "SQ":
            elements[tag] = Element("SQ", [_ours(item) for item in spec[1]])
        else:
            elements[tag] = Element(spec[0], spec[1])
    return elements


def _theirs(case):
    dataset = Dataset()
    for tag, spec in case.items():
        if spec[0] == "SQ":
            dataset.add_new(tag, "SQ", [_theirs(item) for item in spec[1]])
        elif isinstance(spec[1], Fragments):
            dataset.add_new(tag, spec[0], encapsulate(list(spec[1].frames), has_bot=True))
            dataset[tag].is_undefined_length = True
        else:
            dataset.add_new(tag, spec[0], spec[2])
    return dataset


def _pydicom_dataset_bytes(dataset):
    """pydicom's explicit VR little endian encoding of a dataset alone (no preamble, no file meta)."""
    out = io.BytesIO()
    pydicom.dcmwrite(out, dataset, enforce_file_format=False, implicit_vr=False, little_endian=True)
    return out.getvalue()


FLAT = {
    0x00080005: text("CS", "ISO_IR 100"),
    0x00080016: text("UI", SECONDARY_CAPTURE),
    0x00080020: text("DA", "20240506"),
    0x00080030: text("TM", "070809"),
    0x0008002A: text("DT", "20240506070809"),
    0x00080050: text("SH", "ACC1"),
    0x00080060: text("CS", "OT"),
    0x00080080: text("LO", "Hospital"),
    0x00081010: text("SH", "STATION\\TWO"),
    0x00100010: text("PN", "Doe^John"),
    0x00101010: text("AS", "042Y"),
    0x00101020: text("DS", "1.75"),
    0x00200013: text("IS", "12"),
    0x00204000: text("LT", "a long text"),
    0x00321060: text("LO", "Requested"),
    0x00400254: text("LO", "step"),
    0x00080201: text("SH", "+0100"),
    0x00081030: text("LO", "Study"),
    0x0040A160: text("UT", "unlimited text"),
    0x00080120: text("UR", "http://example.org/"),
    0x00189004: text("CS", "PRODUCT"),
    0x00080119: text("UC", "long code value"),
    0x00080054: text("AE", "SCU_AE"),
    0x00280010: numbers("US", "H", 64),
    0x00280011: numbers("US", "H", 32),
    0x00281100: numbers("US", "H", 256, 0, 16),
    0x00186020: numbers("SL", "l", -7),
    0x00180086: text("IS", "1\\2\\3"),
    0x00189219: numbers("SS", "h", -3, 4),
    0x00189232: numbers("UL", "L", 4000000000),
    0x00189087: numbers("FD", "d", 0.5, -2.25),
    0x00189089: numbers("FD", "d", 1e300),
    0x00181318: text("DS", "-1.5e3"),
    0x0018605A: numbers("FL", "f", 0.25, 8.0),
    0x00209165: tags(0x00100010, 0x7FE00010),
    0x00290010: text("LO", "CREATOR"),
    0x00291001: binary("OB", b"\x00\x01\x02\x03"),
    0x00291002: unknown(b"\xff\xfe"),
    0x00660016: binary("OF", struct.pack("<2f", 1.0, 2.0)),
    0x00660040: binary("OL", struct.pack("<2L", 1, 2)),
    0x00640009: binary("OD", struct.pack("<d", 3.5)),
    0x00660043: binary("OV", struct.pack("<Q", 2 ** 40)),
    0x0072007F: numbers("SV", "q", -(2 ** 40)),
    0x00720082: numbers("UV", "Q", 2 ** 63),
    0x7FE00010: binary("OW", bytes(range(16))),
}

CASES = [
    pytest.param(FLAT, id="flat-every-vr"),
    pytest.param(dict(reversed(list(FLAT.items()))), id="flat-given-in-reverse-order-is-sorted"),
    pytest.param({0x00081115: sequence(
        {0x0020000E: text("UI", "1.2.3.4"), 0x00081199: sequence(
            {0x00081150: text("UI", SECONDARY_CAPTURE), 0x00081155: text("UI", "1.2.3.4.5")},
            {0x00081155: text("UI", "1.2.3.4.6"), 0x00081150: text("UI", SECONDARY_CAPTURE)})},
        {0x0020000E: text("UI", "1.2.3.44")}),
        0x00100010: text("PN", "A^B")}, id="nested-two-levels"),
    pytest.param({0x0040A730: sequence(
        {0x0040A040: text("CS", "CONTAINER"), 0x0040A730: sequence(
            {0x0040A040: text("CS", "TEXT"), 0x0040A160: text("UT", "x"), 0x0040A043: sequence(
                {0x00080100: text("SH", "121071"), 0x00080102: text("SH", "DCM"),
                 0x00080104: text("LO", "Finding")})},
            {})},
        {})}, id="nested-three-levels-with-empty-items"),
    pytest.param({0x00081110: sequence(), 0x00081111: sequence({}), 0x00081120: sequence({}, {}, {})},
                 id="empty-sequence-and-items"),
    pytest.param({0x00400275: sequence({0x00321060: text("LO", "odd"), 0x00400007: sequence()})},
                 id="empty-sequence-inside-an-item"),
    pytest.param({0x7FE00010: fragments(b"\xff\xd8\xff\xd9")}, id="encapsulated-one-frame"),
    pytest.param({0x7FE00010: fragments(b"\xff\xd8" + bytes(100) + b"\xff\xd9", b"\xff\xd8\x01\x02\xff\xd9",
                                        b"\xff\xd8\xff\xd9")}, id="encapsulated-three-frames"),
    pytest.param({0x7FE00010: fragments(b"\xff\xd8\x01\xff\xd9", b"\xff\xd8\xff\xd9", b"abc")},
                 id="encapsulated-odd-length-fragments"),
    pytest.param({0x00280008: text("IS", "1"), 0x7FE00010: fragments(b"\x01")}, id="encapsulated-one-byte-frame"),
    pytest.param({0x7FE00010: fragments()}, id="encapsulated-no-frame"),
    pytest.param({
        0x00080018: text("UI", "1.2.345"),  # UI: NUL
        0x00080054: text("AE", "AE1"),
        0x00080060: text("CS", "ABC"),
        0x0008002A: text("DT", "20240102030405.12"),
        0x00080030: text("TM", "010203.12"),
        0x00080050: text("SH", "abc"),
        0x00080080: text("LO", "ABC"),
        0x00081010: text("SH", "A\\B"),
        0x00080119: text("UC", "abc"),
        0x00080120: text("UR", "http://a.b/cd"),
        0x00100010: text("PN", "Doe^J"),
        0x00101020: text("DS", "1.5"),
        0x00200013: text("IS", "123"),
        0x00204000: text("LT", "abc"),
        0x00321066: text("UT", "abc"),
        0x00324000: text("LT", "a"),
        0x0040A160: text("UT", "odd"),
        0x00400280: text("ST", "abc"),
        0x00290010: text("LO", "CREATOR"),
        0x00291001: binary("OB", b"\x01\x02\x03"),  # OB: NUL
        0x00291002: unknown(b"\x01"),  # UN: NUL (see unknown())
        0x00420011: binary("OB", b"%PDF-1.4 od"),
    }, id="odd-lengths-every-padding"),
    pytest.param({
        0x00080018: text("UI", ""),
        0x00080050: text("SH", ""),
        0x00080090: text("PN", ""),
        0x00100010: text("PN", ""),
        0x00100020: text("LO", ""),
        0x00100030: text("DA", ""),
        0x00200013: text("IS", ""),
        0x00101020: text("DS", ""),
        0x0040A160: text("UT", ""),
        0x00080120: text("UR", ""),
        0x00080119: text("UC", ""),
        0x00280010: numbers("US", "H"),
        0x00189087: numbers("FD", "d"),
        0x00209165: tags(),
        0x00290010: text("LO", "CREATOR"),
        0x00291001: binary("OB", b""),
        0x00291002: unknown(b""),
        0x7FE00010: binary("OW", b""),
        0x00081110: sequence(),
    }, id="empty-values"),
    pytest.param({
        0x0040A160: text("UT", "u" * 70001),
        0x00290010: text("LO", "CREATOR"),
        0x00291001: binary("OB", bytes(range(256)) * 300),
        0x00291002: unknown(b"\x07" * 65537),
        0x00420011: binary("OB", b"%" * 65535),
        0x7FE00010: binary("OW", b"\x01\x02" * 40000),
        0x00081115: sequence({0x0040A160: text("UT", "t" * 70000)}, {0x00100010: text("PN", "x" * 64)}),
    }, id="long-length-vrs-over-64k"),
    pytest.param({
        0x00100010: text("LO", "x" * 65534),
        0x00204000: text("LT", "y" * 10239),
    }, id="short-length-vrs-at-their-largest",
        # pydicom warns that LO allows 64 characters; the core writes longer values, and so do we.
        marks=pytest.mark.filterwarnings("ignore:The value length .* exceeds the maximum length")),
]


@pytest.mark.parametrize("case", CASES)
def test_encode_dataset_writes_what_pydicom_writes(case):
    assert writer.encode_dataset(_ours(case)) == _pydicom_dataset_bytes(_theirs(case))


def test_private_elements_with_their_creator_match_pydicom_private_blocks():
    theirs = Dataset()
    theirs.PatientName = "Private^Test"
    acme = theirs.private_block(0x0009, "ACME 1.0", create=True)
    acme.add_new(0x01, "LO", "acme value")
    acme.add_new(0x02, "UN", b"\x01\x02\x03\x04")
    acme.add_new(0x10, "US", 7)
    other = theirs.private_block(0x0009, "OTHER", create=True)  # the next free block: (0009,0011)
    other.add_new(0x01, "SH", "odd")
    item = Dataset()
    item.private_block(0x0011, "NESTED", create=True).add_new(0x01, "UT", "inside an item")
    theirs.private_block(0x0011, "ACME 1.0", create=True).add_new(0x05, "SQ", [item])
    ours = {
        0x00100010: Element("PN", b"Private^Test"),
        0x00090010: Element("LO", b"ACME 1.0"),
        0x00091001: Element("LO", b"acme value"),
        0x00091002: Element("UN", b"\x01\x02\x03\x04"),
        0x00091010: Element("US", struct.pack("<H", 7)),
        0x00090011: Element("LO", b"OTHER"),
        0x00091101: Element("SH", b"odd"),
        0x00110010: Element("LO", b"ACME 1.0"),
        0x00111005: Element("SQ", [{0x00110010: Element("LO", b"NESTED"),
                                    0x00111001: Element("UT", b"inside an item")}]),
    }
    assert writer.encode_dataset(ours) == _pydicom_dataset_bytes(theirs)


@pytest.mark.parametrize("vr", ["LO", "LT", "ST", "SH", "PN", "UI", "CS", "US"])
def test_a_short_length_vr_over_64k_is_refused(vr):
    # pydicom differs on purpose here: it writes such a value as UN (with a warning). The core refuses
    # it, and so do we (README: values over 65,534 bytes).
    with pytest.raises(BadFileFormat, match="65534"):
        writer.encode_dataset({0x00100010: Element(vr, b"x" * 65536)})


def _their_file(dataset, sop_class, sop_instance, transfer_syntax, enforce):
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = writer.IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = writer.IMPLEMENTATION_VERSION_NAME
    if not enforce:
        meta.FileMetaInformationGroupLength = 0  # recomputed by pydicom
        dataset.preamble = b"\0" * 128
    dataset.file_meta = meta
    out = io.BytesIO()
    pydicom.dcmwrite(out, dataset, enforce_file_format=enforce, implicit_vr=False, little_endian=True)
    return out.getvalue()


@pytest.mark.parametrize("instance_uid", ["1.2.3.4", "1.2.3.45"], ids=["odd-uid", "even-uid"])
def test_encode_file_writes_what_pydicom_writes_as_a_standard_file(instance_uid):
    case = {0x00080016: text("UI", SECONDARY_CAPTURE), 0x00080018: text("UI", instance_uid),
            0x00100010: text("PN", "File^Test"), 0x7FE00010: binary("OW", bytes(8))}
    expected = _their_file(_theirs(case), SECONDARY_CAPTURE, instance_uid, writer.EXPLICIT_VR_LITTLE_ENDIAN, True)
    assert writer.encode_file(_ours(case)) == expected


def test_encode_file_with_an_encapsulated_transfer_syntax():
    case = {0x00080016: text("UI", SECONDARY_CAPTURE), 0x00080018: text("UI", "1.2.3"),
            0x7FE00010: fragments(b"\xff\xd8\xff\xd9")}
    expected = _their_file(_theirs(case), SECONDARY_CAPTURE, "1.2.3", JPEG_BASELINE, True)
    assert writer.encode_file(_ours(case), JPEG_BASELINE) == expected


def test_encode_file_without_sop_uids_writes_dcmtk_s_generic_file_meta():
    # Without SOP Class and Instance UIDs, the file meta says what DCMTK (and so the core) writes: its
    # private generic SOP class and an empty instance UID. pydicom's standard mode refuses that empty
    # (0002,0003), so it is asked to write this file meta as given (it still computes the group length).
    case = {0x00100010: text("PN", "No^Uids")}
    expected = _their_file(_theirs(case), writer.DCMTK_PRIVATE_GENERIC_FILE, "",
                           writer.EXPLICIT_VR_LITTLE_ENDIAN, False)
    assert writer.encode_file(_ours(case)) == expected


def test_a_written_file_reads_back_in_pydicom():
    ours = _ours(FLAT)
    dataset = pydicom.dcmread(io.BytesIO(writer.encode_file(ours)))
    assert dataset.file_meta.TransferSyntaxUID == writer.EXPLICIT_VR_LITTLE_ENDIAN
    assert dataset.file_meta.MediaStorageSOPClassUID == SECONDARY_CAPTURE
    assert dataset.PatientName == "Doe^John" and dataset.Rows == 64
    assert list(dataset[0x00281100].value) == [256, 0, 16]
