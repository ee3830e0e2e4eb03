"""DICOM Part 10 files in Explicit VR Little Endian, written straight from elements.

An element is `Element(vr, value)`: `value` is the encoded bytes (unpadded) of a
leaf, or a list of items (dicts tag -> Element) for a sequence. Writing by hand
rather than through pydicom's Dataset keeps small images as cheap as the core's.
"""
import collections
import struct

from ..errors import BadFileFormat

Element = collections.namedtuple("Element", "vr value")
# The value of an encapsulated Pixel Data element: compressed frames, one fragment each, and whether the
# Basic Offset Table lists them (a video is one stream, whose table stays empty).
Fragments = collections.namedtuple("Fragments", "frames table", defaults=(True,))

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
# Our implementation's identity in the file meta (a UUID-derived UID, like our other UIDs).
IMPLEMENTATION_CLASS_UID = "2.25.186128549421262718733870018297016066651"
IMPLEMENTATION_VERSION_NAME = "ADVANCED_REST_1"
# What DCMTK (and so the core) writes as Media Storage SOP Class when the dataset has none.
DCMTK_PRIVATE_GENERIC_FILE = "1.2.276.0.7230010.3.1.0.1"

_LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_PAD_WITH_NUL = frozenset({"UI", "OB", "OD", "OF", "OL", "OV", "OW", "UN", "SV", "UV",
                           "US", "SS", "UL", "SL", "FL", "FD", "AT"})
_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_HEADER_SHORT = struct.Struct("<HH2sH")
_HEADER_LONG = struct.Struct("<HH2sHI")


def _encode_fragments(fragments):
    """The parts of encapsulated pixel data: Basic Offset Table, one item per frame, sequence delimiter.

    Parts, not their join: a frame of a video is hundreds of megabytes, copied once, into the file."""
    offsets, position = [], 0
    items = []
    for frame in fragments.frames:
        odd = len(frame) % 2
        offsets.append(position)
        items += [_ITEM + struct.pack("<I", len(frame) + odd), frame] + ([b"\0"] if odd else [])
        position += 8 + len(frame) + odd
    table = struct.pack("<%dI" % len(offsets), *offsets) if fragments.table else b""
    return [_ITEM + struct.pack("<I", len(table)) + table] + items + [_SEQUENCE_DELIMITER]


def _encode_value(vr, value):
    if vr == "SQ":
        parts = []
        for item in value:
            body = encode_dataset(item)
            parts.append(_ITEM + struct.pack("<I", len(body)) + body)
        return b"".join(parts)
    if len(value) % 2:
        return value + (b"\0" if vr in _PAD_WITH_NUL else b" ")
    return value


def encode_dataset(elements):
    """The explicit VR little endian encoding of `elements` (dict tag -> Element), sorted by tag."""
    out = []
    for tag in sorted(elements):
        vr, value = elements[tag]
        group, element = tag >> 16, tag & 0xFFFF
        if isinstance(value, Fragments):
            out.append(_HEADER_LONG.pack(group, element, vr.encode(), 0, _UNDEFINED_LENGTH))
            out += _encode_fragments(value)
            continue
        data = _encode_value(vr, value)
        if vr in _LONG_LENGTH_VRS:
            out.append(_HEADER_LONG.pack(group, element, vr.encode(), 0, len(data)))
        else:
            if len(data) > 0xFFFF:
                raise BadFileFormat("Tag %04x,%04x (VR %s) cannot hold more than 65534 bytes" % (group, element, vr))
            out.append(_HEADER_SHORT.pack(group, element, vr.encode(), len(data)))
        out.append(data)
    return b"".join(out)


def _uid(value):
    return value.encode("ascii")


def encode_file(dataset, transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN):
    """A Part 10 file: preamble, file meta (derived from the dataset, as DCMTK does), dataset."""
    sop_class = dataset.get(0x00080016)
    sop_instance = dataset.get(0x00080018)
    meta = {
        0x00020001: Element("OB", b"\x00\x01"),
        0x00020002: Element("UI", sop_class.value if sop_class else _uid(DCMTK_PRIVATE_GENERIC_FILE)),
        0x00020003: Element("UI", sop_instance.value if sop_instance else b""),
        0x00020010: Element("UI", _uid(transfer_syntax)),
        0x00020012: Element("UI", _uid(IMPLEMENTATION_CLASS_UID)),
        0x00020013: Element("SH", IMPLEMENTATION_VERSION_NAME.encode("ascii")),
    }
    meta_bytes = encode_dataset(meta)
    group_length = encode_dataset({0x00020000: Element("UL", struct.pack("<I", len(meta_bytes)))})
    return b"\0" * 128 + b"DICM" + group_length + meta_bytes + encode_dataset(dataset)
