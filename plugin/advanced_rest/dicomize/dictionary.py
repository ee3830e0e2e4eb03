"""Tag names and VRs: pydicom's data dictionary plus Orthanc's `Dictionary` option."""
import re

from pydicom import datadict

from ..errors import BadRequest, UnknownDicomTag

_HEX_TAG = re.compile(r"([0-9A-Fa-f]{4})[,-]?([0-9A-Fa-f]{4})")

# pydicom writes ambiguous VRs as alternatives; DCMTK keeps one internal code each.
AMBIGUOUS_VRS = {"US or SS": "xs", "OB or OW": "ox", "US or OW": "lt", "US or SS or OW": "lt"}


def format_tag(tag):
    """"gggg,eeee" in lower-case hex, as Orthanc prints tags."""
    return "%04x,%04x" % (tag >> 16, tag & 0xFFFF)


def is_private(tag):
    """Whether `tag` is in an odd (private) group."""
    return (tag >> 16) % 2 == 1


class Dictionary:
    """Resolves tag names and VRs; built once from Orthanc's `Dictionary` configuration.

    Raises:
        BadRequest: (from the constructor) for a malformed `Dictionary` entry.
    """

    def __init__(self, custom=None):
        self._by_name = {}
        self._vr = {}  # (tag, private creator or "") -> VR
        self._public = {}  # public tag -> VR, as pydicom's dictionary gave it (looked up once)
        for key, entry in (custom or {}).items():
            match = _HEX_TAG.fullmatch(key)
            if not match or not isinstance(entry, list) or len(entry) < 2:
                raise BadRequest("Bad entry in the Dictionary configuration: %r" % key)
            tag = int(match.group(1) + match.group(2), 16)
            creator = entry[4] if len(entry) > 4 and isinstance(entry[4], str) else ""
            self._by_name[entry[1]] = tag
            self._vr[(tag, creator)] = entry[0]

    def parse_tag(self, name):
        """The tag (an int) named `name`: "gggg,eeee", "ggggeeee" or a keyword.

        Raises:
            UnknownDicomTag: when no dictionary knows the name.
        """
        match = _HEX_TAG.fullmatch(name)
        if match:
            return int(match.group(1) + match.group(2), 16)
        tag = self._by_name.get(name)
        if tag is None:
            tag = datadict.tag_for_keyword(name)
        if tag is None:
            raise UnknownDicomTag(name)
        return tag

    def vr(self, tag, private_creator=""):
        """The VR of `tag` ("UN" when unknown); ambiguous ones as DCMTK's codes (xs, ox, lt)."""
        if is_private(tag):
            found = self._vr.get((tag, private_creator)) or self._vr.get((tag, ""))
            if found:
                return found
            if private_creator:
                try:
                    found = datadict.private_dictionary_VR(tag, private_creator)
                except KeyError:
                    found = None
                if found:
                    return AMBIGUOUS_VRS.get(found, found)
            return "UN"
        found = self._vr.get((tag, "")) or self._public.get(tag)
        if found:
            return found
        try:
            found = datadict.dictionary_VR(tag)
        except KeyError:
            return "UN"
        # Only tags pydicom knows are kept: the cache stays the size of its dictionary.
        found = self._public[tag] = AMBIGUOUS_VRS.get(found, found)
        return found
