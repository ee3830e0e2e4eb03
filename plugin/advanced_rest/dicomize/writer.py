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
_LENGTH_SHORT = struct.Struct("<H")
_LENGTH_LONG = struct.Struct("<I")
_PREAMBLE = b"\0" * 128 + b"DICM"


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


def _sequence(items):
    parts = []
    for item in items:
        body = encode_dataset(item)
        parts.append(_ITEM + struct.pack("<I", len(body)) + body)
    return b"".join(parts)


# (tag, VR) -> the element's header without its length: the same few dozen for every file.
_PREFIXES = {}


def _prefix(tag, vr):
    prefix = _PREFIXES.get((tag, vr))
    if prefix is None:
        prefix = struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr.encode())
        if vr in _LONG_LENGTH_VRS:
            prefix += b"\0\0"  # reserved
        if len(_PREFIXES) < 4096:  # the usual tags, not every tag a request ever named
            _PREFIXES[(tag, vr)] = prefix
    return prefix


def _dataset_parts(elements, out):
    """Append to `out` the parts of the explicit VR little endian encoding of `elements`, sorted by tag:
    each value itself (never copied: pixels and documents can be hundreds of megabytes), then its padding
    to an even length."""
    append = out.append
    long_vrs, pack_long, pack_short = _LONG_LENGTH_VRS, _LENGTH_LONG.pack, _LENGTH_SHORT.pack
    for tag in sorted(elements):
        vr, value = elements[tag]
        if vr == "SQ":
            value = _sequence(value)
        elif type(value) is Fragments:
            append(_prefix(tag, vr) + pack_long(_UNDEFINED_LENGTH))
            out += _encode_fragments(value)
            continue
        length = len(value)
        odd = length % 2
        if vr in long_vrs:
            append(_prefix(tag, vr) + pack_long(length + odd))
        elif length + odd > 0xFFFF:
            raise BadFileFormat("Tag %04x,%04x (VR %s) cannot hold more than 65534 bytes" % (tag >> 16, tag & 0xFFFF,
                                                                                             vr))
        else:
            append(_prefix(tag, vr) + pack_short(length + odd))
        append(value)
        if odd:
            append(b"\0" if vr in _PAD_WITH_NUL else b" ")
    return out


def encode_dataset(elements):
    """The explicit VR little endian encoding of `elements` (dict tag -> Element), sorted by tag.

    A value may be any bytes-like object of one byte per item (bytes, bytearray, a memoryview cast to "B").
    """
    return b"".join(_dataset_parts(elements, []))


def _uid(value):
    return value.encode("ascii")


# Transfer syntax -> the encoded file meta elements that follow Media Storage SOP Instance UID: the same
# for every file of that syntax.
_META_TAILS = {}


def _meta_tail(transfer_syntax):
    tail = _META_TAILS.get(transfer_syntax)
    if tail is None:
        tail = _META_TAILS[transfer_syntax] = encode_dataset({
            0x00020010: Element("UI", _uid(transfer_syntax)),
            0x00020012: Element("UI", _uid(IMPLEMENTATION_CLASS_UID)),
            0x00020013: Element("SH", IMPLEMENTATION_VERSION_NAME.encode("ascii")),
        })
    return tail


def encode_file(dataset, transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN):
    """A Part 10 file: preamble, file meta (derived from the dataset, as DCMTK does), dataset."""
    sop_class = dataset.get(0x00080016)
    sop_instance = dataset.get(0x00080018)
    meta_bytes = encode_dataset({
        0x00020001: Element("OB", b"\x00\x01"),
        0x00020002: Element("UI", sop_class.value if sop_class else _uid(DCMTK_PRIVATE_GENERIC_FILE)),
        0x00020003: Element("UI", sop_instance.value if sop_instance else b""),
    }) + _meta_tail(transfer_syntax)
    group_length = encode_dataset({0x00020000: Element("UL", struct.pack("<I", len(meta_bytes)))})
    # Joined once: the file is the only copy of its pixels the writer makes.
    return b"".join(_dataset_parts(dataset, [_PREAMBLE, group_length, meta_bytes]))
