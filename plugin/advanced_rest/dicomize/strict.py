"""`Strict`: complete an instance into a conformant IOD (beyond the core, which does not).

Secondary Capture for images (Multi-frame Secondary Capture for MultiFrame), Encapsulated PDF or 3D model for documents: the right SOP Class
and every Type 1 and Type 2 attribute of their modules, added only where the request
and the content left them absent, so that `dciodvfy` reports no error.
"""
from ..errors import BadRequest
from .documents import DOCUMENTS, PDF
from .writer import Element

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

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
    (0x00420010, ""),  # Document Title
)
# Encapsulated 3D models (STL, OBJ, MTL): the equipment is this plugin; the models'
# units are unknown to it, so millimetres, the usual unit of these files, are declared.
_MODEL = (
    (0x00200011, "1"),  # Series Number
    (0x00200013, "1"),  # Instance Number
    (0x0008002A, ""),  # Acquisition DateTime
    (0x00420010, ""),  # Document Title
    (0x00201040, ""),  # Position Reference Indicator
    (0x00081090, "advanced-rest"),  # Manufacturer's Model Name
    (0x00181000, "1"),  # Device Serial Number
)
# The SC Multi-frame Image module (PS3.3 C.8.6.3): whether the frames show identifying text is
# unknown here, so they may; grayscale frames are shown as stored (identity rescale, unspecified units).
_MULTI_FRAME = _IMAGE + ((0x00280301, "YES"),)  # Burned In Annotation
_MULTI_FRAME_GRAY = _MULTI_FRAME + (
    (0x20500020, "IDENTITY"),  # Presentation LUT Shape
    (0x00281052, "0"),  # Rescale Intercept
    (0x00281053, "1"),  # Rescale Slope
    (0x00281054, "US"),  # Rescale Type: unspecified
)
MULTI_FRAME_TRUE_COLOR = "1.2.840.10008.5.1.4.1.1.7.4"
# The video IODs (Video Endoscopic, Microscopic, Photographic): the modules they share beyond the common ones.
_VIDEO = (
    (0x00200011, ""),  # Series Number
    (0x00200013, ""),  # Instance Number
    (0x00200020, ""),  # Patient Orientation (Laterality: left to the request, which names the body part)
    (0x00080008, "ORIGINAL\\PRIMARY"),  # Image Type (VL Image module)
    (0x00080023, ""),  # Content Date
    (0x00080033, ""),  # Content Time
)
CONCEPT_NAME_CODE_SEQUENCE = 0x0040A043
ACQUISITION_CONTEXT_SEQUENCE = 0x00400555
ANATOMIC_REGION_SEQUENCE = 0x00082218
MEASUREMENT_UNITS_CODE_SEQUENCE = 0x004008EA
MODALITY = 0x00080060
MANUFACTURER = 0x00080070
_ENCAPSULATED_DOCUMENT = 0x00420011
_DOCUMENT_LENGTH = 0x00420015


def _code(value, scheme, meaning):
    return {0x00080100: Element("SH", value.encode()), 0x00080102: Element("SH", scheme.encode()),
            0x00080104: Element("LO", meaning.encode())}


def _iod(instance, requested_tags):
    """(SOP Class UID, attributes to add) for the content of `instance`."""
    elements = instance.elements
    if instance.kind == "video":
        if ANATOMIC_REGION_SEQUENCE not in elements:
            # The VL Image module requires it of these IODs; which part of the body a video shows is the
            # request's to say, not a default's.
            raise BadRequest("Strict video needs AnatomicRegionSequence in Tags (a code of the body part it shows, "
                             "e.g. [{\"CodeValue\": \"818981001\", \"CodingSchemeDesignator\": \"SCT\", "
                             "\"CodeMeaning\": \"Abdomen\"}])")
        if ACQUISITION_CONTEXT_SEQUENCE not in elements:
            elements[ACQUISITION_CONTEXT_SEQUENCE] = Element("SQ", [])
        return elements[0x00080016].value.rstrip(b"\0").decode("ascii"), _VIDEO
    if instance.kind == "multi-frame":
        sop_class = elements[0x00080016].value.rstrip(b"\0").decode("ascii")
        return sop_class, (_MULTI_FRAME if sop_class == MULTI_FRAME_TRUE_COLOR else _MULTI_FRAME_GRAY)
    mime = elements.get(0x00420012)
    mime = mime.value.rstrip(b" ").decode("ascii", "replace") if mime is not None else None
    if mime is None and 0x7FE00010 in elements and 0x00280010 in elements:
        return SECONDARY_CAPTURE, _IMAGE
    if mime == PDF:
        if MODALITY not in requested_tags:
            instance.set_string(MODALITY, "DOC")  # the only value of this IOD's Modality
        return DOCUMENTS[PDF].sop_class, _PDF
    if mime in DOCUMENTS:  # the other documents are the 3D models
        if MANUFACTURER not in requested_tags:
            instance.set_string(MANUFACTURER, "Orthanc advanced-rest")  # Type 1 in these IODs
        instance.set_if_absent(0x00200052, instance.env.new_uid())  # Frame of Reference UID
        instance.set_if_absent(0x00181020, instance.env.software_version)  # Software Versions
        if MEASUREMENT_UNITS_CODE_SEQUENCE not in elements:
            elements[MEASUREMENT_UNITS_CODE_SEQUENCE] = Element("SQ", [_code("mm", "UCUM", "mm")])
        return DOCUMENTS[mime].sop_class, _MODEL
    raise BadRequest("Strict needs an image (PNG, JPEG, PAM), a PDF or a 3D model in Content")


def complete(instance, requested_tags):
    """Add what the IOD of `instance`'s content requires (its elements are changed in place).

    `requested_tags`: the tags the request set itself; they are never changed.

    Raises:
        BadRequest: for content that has no strict IOD here (none, or raw pixels).
    """
    elements = instance.elements
    sop_class, extra = _iod(instance, requested_tags)
    if 0x00080016 not in requested_tags:
        instance.set_string(0x00080016, sop_class)
    common = _COMMON if instance.kind != "video" else _COMMON[:-1]  # no Conversion Type: no SC Equipment module
    for tag, value in common + extra:
        instance.set_if_absent(tag, value)
    if _ENCAPSULATED_DOCUMENT in elements:
        # Whether a document shows identifying text is unknown here: say it may.
        instance.set_if_absent(0x00280301, "YES")  # Burned In Annotation
        if CONCEPT_NAME_CODE_SEQUENCE not in elements:
            elements[CONCEPT_NAME_CODE_SEQUENCE] = Element("SQ", [])
        if _DOCUMENT_LENGTH not in elements:
            # The document's own length: the stored value may carry one byte of padding.
            length = len(elements[_ENCAPSULATED_DOCUMENT].value)
            elements[_DOCUMENT_LENGTH] = Element("UL", length.to_bytes(4, "little"))
