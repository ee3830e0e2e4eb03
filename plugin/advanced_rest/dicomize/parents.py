"""`Parent`: which tags a new instance inherits from an existing patient, study or series."""
import dataclasses
import re

from ..errors import AdvancedRestError, InexistentParent, OrthancError, ParentIsInstance, UnknownResource

# Tags copied from each level of the parent, those of the core's module lists
# (Patient, General Study, General Series modules of PS3.3).
MODULE_TAGS = {
    "Patient": (
        0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x00081120, 0x00100032, 0x00101000,
        0x00101002, 0x00101001, 0x00102160, 0x00104000, 0x00102201, 0x00102202, 0x00102292,
        0x00102293, 0x00102294, 0x00102297, 0x00102298, 0x00102299, 0x00120062, 0x00120063,
        0x00120064, 0x00100021, 0x00100024,
    ),
    "Study": (
        0x0020000D, 0x00080020, 0x00080030, 0x00080090, 0x00080096, 0x00200010, 0x00080050,
        0x00080051, 0x00081030, 0x00081048, 0x00081049, 0x00081060, 0x00081062, 0x00321034,
        0x00081110, 0x00081032, 0x00401012,
    ),
    "Series": (
        0x00080060, 0x0020000E, 0x00200011, 0x00200060, 0x00080021, 0x00080031, 0x00081050,
        0x00081052, 0x00181030, 0x0008103E, 0x0008103F, 0x00081070, 0x00081072, 0x00081111,
        0x00081250, 0x00180015, 0x00185100, 0x00280108, 0x00290109, 0x00400275, 0x00102210,
        0x00400253, 0x00400244, 0x00400245, 0x00400254, 0x00400260, 0x00400280,
    ),
}

_ORTHANC_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}")

# Resource level -> (REST folder, levels whose modules are inherited).
_LEVELS = (
    ("Series", "series", ("Series", "Study", "Patient")),
    ("Study", "studies", ("Study", "Patient")),
    ("Patient", "patients", ("Patient",)),
)


@dataclasses.dataclass(frozen=True)
class Parent:
    """An existing resource to attach to: its level and the tags of one of its instances."""

    level: str
    tags: dict  # "gggg,eeee" -> {"Type": ..., "Value": ...}, as /instances/{id}/tags gives

    def inherited(self):
        """(tag, value or None) for each inherited tag the parent has as a string or empty."""
        levels = next(inherit for level, _, inherit in _LEVELS if level == self.level)
        result = []
        for level in levels:
            for tag in MODULE_TAGS[level]:
                entry = self.tags.get("%04x,%04x" % (tag >> 16, tag & 0xFFFF))
                if entry is None:
                    continue
                if entry.get("Type") == "Null":
                    result.append((tag, ""))
                elif entry.get("Type") == "String":
                    result.append((tag, entry.get("Value", "")))
        return result

    def character_set(self):
        """The parent's Specific Character Set value, or None."""
        entry = self.tags.get("0008,0005")
        if entry is None:
            return None
        value = entry.get("Value")
        return value if isinstance(value, str) else ""


def _exists(uri, rest_get_json):
    """Whether GET `uri` finds a resource; only "unknown resource" means it does not.

    Raises:
        OrthancError: any other failure (e.g. the database is down), with its own status.
    """
    try:
        rest_get_json(uri)
    except OrthancError as error:
        if error.code == UnknownResource.code or error.http_status == 404:
            return False
        raise
    return True


def resolve(parent_id, rest_get_json):
    """The Parent for an Orthanc id, read through `rest_get_json(uri)`.

    Raises:
        InexistentParent: for an id of nothing (or not shaped like an Orthanc id).
        ParentIsInstance: for an instance's id.
        AdvancedRestError: a parent without any instance.
        OrthancError: Orthanc failing otherwise than on an unknown id.
    """
    if not _ORTHANC_ID.fullmatch(parent_id):
        raise InexistentParent()
    for level, folder, _ in _LEVELS:
        if not _exists("/%s/%s" % (folder, parent_id), rest_get_json):
            continue
        instances = rest_get_json("/%s/%s/instances" % (folder, parent_id))
        if not instances:
            raise AdvancedRestError("The parent has no instance")
        tags = rest_get_json("/instances/%s/tags" % instances[0]["ID"])
        return Parent(level, tags)
    if not _exists("/instances/%s" % parent_id, rest_get_json):
        raise InexistentParent()
    raise ParentIsInstance()
