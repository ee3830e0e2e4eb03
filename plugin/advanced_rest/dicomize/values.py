"""JSON tag values -> encoded DICOM elements, with the core's rules for each VR."""
import dataclasses
import math
import re
import struct

from ..errors import BadFileFormat, BadParameterType
from . import datauri
from .dictionary import format_tag, is_private
from .writer import Element

BINARY_URI_PREFIX = "data:application/octet-stream;base64,"

_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
                       "UC", "UI", "UR", "UT"})
_BINARY_VRS = frozenset({"OB", "OW", "UN", "ox"})  # OW: see element_from_string
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)

# VR -> (struct format, lowest, highest) for the binary integers.
_INTEGERS = {
    "US": ("<H", 0, 0xFFFF),
    "SS": ("<h", -0x8000, 0x7FFF),
    "UL": ("<I", 0, 0xFFFFFFFF),
    "OL": ("<I", 0, 0xFFFFFFFF),
    "SL": ("<i", -0x80000000, 0x7FFFFFFF),
    "UV": ("<Q", 0, 0xFFFFFFFFFFFFFFFF),
    "SV": ("<q", -0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}
_FLOATS = {"FL": "<f", "OF": "<f", "FD": "<d", "OD": "<d"}


@dataclasses.dataclass(frozen=True)
class Context:
    """What converting a value needs: tag dictionary, encoding, private creator, data-URI switch."""

    dictionary: object
    encoding: object
    private_creator: str = ""
    decode_data_uris: bool = True


class _OutOfRange(ValueError):
    pass


def _integer(text, vr):
    fmt, lowest, highest = _INTEGERS[vr]
    if not _INTEGER.fullmatch(text):
        raise _OutOfRange(text)
    value = int(text)
    if lowest == 0 and value < 0:
        # The core's parser wraps a negative value into an unsigned type ("-1" -> 65535).
        if -value > highest:
            raise _OutOfRange(text)
        value = (highest + 1 + value) % (highest + 1)
    if not lowest <= value <= highest:
        raise _OutOfRange(text)
    return struct.pack(fmt, value)


def _float(text, vr):
    if not _FLOAT.fullmatch(text):
        raise _OutOfRange(text)
    value = float(text)
    if vr in ("FL", "OF") and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
        raise _OutOfRange(text)
    return struct.pack(_FLOATS[vr], value)


def _numbers(text, vr):
    """Several values separated by backslashes, each parsed strictly."""
    convert = _float if vr in _FLOATS else _integer
    return b"".join(convert(part, vr) for part in text.split("\\"))


def concrete_vr(vr):
    """The VR written for a dictionary VR (DCMTK's ambiguous codes resolved as it does)."""
    return {"xs": "US", "lt": "US", "ox": "OB"}.get(vr, vr)


def element_from_string(tag, vr, text, context):
    """The element for `tag` of VR `vr` holding `text` (UTF-8 from JSON).

    Raises:
        BadFileFormat: a value the VR cannot hold, or a malformed data URI.
    """
    if context.decode_data_uris and text.startswith(BINARY_URI_PREFIX):
        parsed = datauri.parse(text)
        if parsed is None:
            raise BadFileFormat("Malformed data URI in tag %s" % format_tag(tag))
        raw = parsed.content
    else:
        raw = context.encoding.encode(text)

    if vr in _BINARY_VRS and vr != "OW":
        return Element("OB" if vr == "ox" else vr, raw)
    if vr in _TEXT_VRS:
        return Element(vr, raw)
    try:
        if vr in _INTEGERS or vr in _FLOATS:
            return Element(vr, _numbers(raw.decode("latin-1"), vr))
        if vr in ("xs", "lt"):
            # "US or SS": written as US; a negative value wraps to the same bytes as SS.
            return Element("US", _numbers(raw.decode("latin-1"), "US"))
        if vr == "OW":
            # Orthanc 1.13 reads an OW value as words separated by backslashes.
            return Element("OW", _numbers(raw.decode("latin-1"), "US"))
        if vr == "AT":
            values = [context.dictionary.parse_tag(part) for part in text.split("\\")]
            return Element("AT", b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in values))
    except _OutOfRange:
        pass
    raise BadFileFormat('Tag %s (VR %s) cannot hold the value "%s"' % (format_tag(tag), concrete_vr(vr), text))


def element_from_json(tag, value, context):
    """The element for `tag` holding a JSON value: string, null, or array of items for a sequence.

    Raises:
        BadParameterType: a JSON type the tag cannot take.
        BadFileFormat: a value the VR cannot hold.
    """
    creator = context.private_creator if is_private(tag) else ""
    vr = context.dictionary.vr(tag, creator)
    if isinstance(value, str):
        return element_from_string(tag, vr, value, context)
    if value is None:
        return element_from_string(tag, vr, "", context)
    if isinstance(value, list):
        if vr != "SQ":
            raise BadParameterType("Tag %s is not a sequence: it takes a string, not an array" % format_tag(tag))
        return Element("SQ", [_item(entry, context) for entry in value])
    raise BadParameterType("Tag %s takes a string, null or (for a sequence) an array, not %s"
                           % (format_tag(tag), type(value).__name__))


def _item(entry, context):
    if isinstance(entry, dict):
        item = {}
        for name, value in entry.items():
            tag = context.dictionary.parse_tag(name)
            item[tag] = element_from_json(tag, value, context)
        return item
    if isinstance(entry, list) and not entry:
        return {}  # an empty array stands for an empty item (Lua cannot tell {} from [])
    raise BadParameterType("An item of a sequence must be a JSON object, not %s" % type(entry).__name__)
