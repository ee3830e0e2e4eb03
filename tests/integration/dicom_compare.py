"""Element-by-element comparison of two DICOM files, as the parity tests need it."""
import io

import pydicom

# Tags that each server generates on its own: compared for presence only, unless
# the request set them or they were inherited from a parent both servers share.
GENERATED = frozenset({
    0x00100020,  # PatientID
    0x0020000D, 0x0020000E, 0x00080018,  # Study, Series, SOP Instance UIDs
    0x00080012, 0x00080013, 0x00080020, 0x00080021, 0x00080022, 0x00080023,
    0x00080030, 0x00080031, 0x00080032, 0x00080033,
})
META_COMPARED = ("MediaStorageSOPClassUID", "TransferSyntaxUID")
# Beyond the core (README, "Sendable by default"): where the core's file has no SOP Class or Modality, the
# plugin's has these (Secondary Capture for an image, Raw Data without one; Modality OT), and its file meta
# names that SOP Class where DCMTK's writes its private "generic file" class.
FILLED = {0x00080016: ("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.66"), 0x00080060: ("OT",)}
DCMTK_GENERIC_FILE = "1.2.276.0.7230010.3.1.0.1"


def read(data):
    """A pydicom dataset from file bytes."""
    return pydicom.dcmread(io.BytesIO(data))


def _value(element):
    value = element.value
    if element.VR == "PN":
        return str(value)
    if isinstance(value, (list, pydicom.multival.MultiValue)):
        return [str(v) if element.VR == "PN" else v for v in value]
    return value


def _differences(core, ours, fixed, path):
    found = []
    tags = sorted(set(core.keys()) | set(ours.keys()))
    for tag in tags:
        where = "%s(%04x,%04x)" % (path, tag.group, tag.element)
        if tag not in ours:
            found.append("%s %s missing in plugin's file" % (where, core[tag].keyword))
            continue
        if tag not in core and path == "" and int(tag) in FILLED:
            if ours[tag].value not in FILLED[int(tag)]:
                found.append("%s %s filled with %r, not one of %s" % (where, ours[tag].keyword, ours[tag].value,
                                                                     FILLED[int(tag)]))
            continue
        if tag not in core:
            found.append("%s %s only in plugin's file: %r" % (where, ours[tag].keyword, ours[tag].value))
            continue
        a, b = core[tag], ours[tag]
        if a.VR != b.VR:
            found.append("%s VR %s (core) != %s (plugin)" % (where, a.VR, b.VR))
            continue
        if a.VR == "SQ":
            if len(a.value) != len(b.value):
                found.append("%s sequence of %d items (core) != %d (plugin)" % (where, len(a.value), len(b.value)))
                continue
            for index, (x, y) in enumerate(zip(a.value, b.value)):
                found.extend(_differences(x, y, fixed, "%s[%d]" % (where, index)))
            continue
        if int(tag) in GENERATED and path == "" and int(tag) not in fixed:
            continue
        if _value(a) != _value(b):
            found.append("%s %s: %r (core) != %r (plugin)" % (where, a.keyword, _value(a)[:80] if isinstance(
                _value(a), (bytes, str)) else _value(a), _value(b)[:80] if isinstance(_value(b), (bytes, str))
                else _value(b)))
    return found


def differences(core_bytes, plugin_bytes, fixed=frozenset()):
    """Human-readable differences between the core's and the plugin's file (empty when alike).

    `fixed`: generated tags whose values must match anyway (set by the request, or inherited). What the plugin
    fills to be sendable (FILLED) where the core's file lacks it is checked for its value, not reported.
    """
    core, ours = read(core_bytes), read(plugin_bytes)
    found = []
    for keyword in META_COMPARED:
        if keyword == "MediaStorageSOPClassUID" and core.file_meta.get(keyword) == DCMTK_GENERIC_FILE \
                and "SOPClassUID" not in core and ours.file_meta.get(keyword) == ours.get("SOPClassUID"):
            continue  # the SOP Class the plugin filled (FILLED)
        if core.file_meta.get(keyword) != ours.file_meta.get(keyword):
            found.append("meta %s: %s (core) != %s (plugin)" % (
                keyword, core.file_meta.get(keyword), ours.file_meta.get(keyword)))
    return found + _differences(core, ours, fixed, "")
