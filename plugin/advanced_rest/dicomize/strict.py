"""`Strict`: complete an instance into a conformant IOD (beyond the core, which does not).

Secondary Capture for images, Encapsulated PDF for PDF documents: the right SOP Class
and every Type 1 and Type 2 attribute of their modules, added only where the request
and the content left them absent, so that `dciodvfy` reports no error.
"""
from ..errors import BadRequest
from .writer import Element

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"

# (tag, value) of the Type 2 (empty allowed) and defaulted Type 1 attributes of the
# modules both IODs share: Patient, General Study, General Equipment, SC Equipment.
_COMMON = (
    (0x00100010, ""),  # Patient's Name
    (0x00100030, ""),  # Patient's Birth Date
    (0x00100040, ""),  # Patient's Sex
    (0x00080020, ""),  # Study Date
    (0x00080030, ""),  # Study Time
    (0x00080090, ""),  # Referring Physician's Name
    (0x00200010, ""),  # Study ID
    (0x00080050, ""),  # Accession Number
    (0x00080070, ""),  # Manufacturer
    (0x00080064, "WSD"),  # Conversion Type: workstation
)
_IMAGE = (
    (0x00080060, "OT"),  # Modality
    (0x00200011, ""),  # Series Number
    (0x00200013, ""),  # Instance Number
    (0x00200020, ""),  # Patient Orientation
    (0x00200060, ""),  # Laterality (dciodvfy cannot tell whether the body part is paired)
)
_PDF = (
    (0x00200011, "1"),  # Series Number (Type 1 in the Encapsulated Document Series)
    (0x00200013, "1"),  # Instance Number (Type 1 in the Encapsulated Document module)
    (0x0008002A, ""),  # Acquisition DateTime
    (0x00280301, "YES"),  # Burned In Annotation: a document shows what it shows
    (0x00420010, ""),  # Document Title
)
CONCEPT_NAME_CODE_SEQUENCE = 0x0040A043
MODALITY = 0x00080060


def complete(instance, requested_tags):
    """Add what the IOD of `instance`'s content requires (its elements are changed in place).

    `requested_tags`: the tags the request set itself; they are never changed.

    Raises:
        BadRequest: for content that has no strict IOD here (none, raw pixels, 3D models).
    """
    elements = instance.elements
    mime = elements.get(0x00420012)
    if 0x7FE00010 in elements and 0x00280010 in elements and mime is None:
        sop_class, extra = SECONDARY_CAPTURE, _IMAGE
    elif mime is not None and mime.value.rstrip(b" ") == b"application/pdf":
        sop_class, extra = ENCAPSULATED_PDF, _PDF
        if MODALITY not in requested_tags:
            instance.set_string(MODALITY, "DOC")  # the only value of this IOD's Modality
    else:
        raise BadRequest("Strict needs an image (PNG, JPEG, PAM) or a PDF in Content")
    if 0x00080016 not in requested_tags:
        instance.set_string(0x00080016, sop_class)
    for tag, value in _COMMON + extra:
        instance.set_if_absent(tag, value)
    if sop_class == ENCAPSULATED_PDF and CONCEPT_NAME_CODE_SEQUENCE not in elements:
        elements[CONCEPT_NAME_CODE_SEQUENCE] = Element("SQ", [])
