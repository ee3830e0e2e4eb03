"""Encapsulated documents: the MIME types that go into DICOM as a document, and as which IOD."""
import typing


class DocumentIod(typing.NamedTuple):
    """The SOP Class of a document's IOD, and the Modality the core writes when the request sets none."""

    sop_class: str
    modality: str


# MIME type -> its Encapsulated Document IOD (PS3.3 A.45), as the core writes it.
DOCUMENTS = {
    "application/pdf": DocumentIod("1.2.840.10008.5.1.4.1.1.104.1", "OT"),  # Encapsulated PDF
    "model/stl": DocumentIod("1.2.840.10008.5.1.4.1.1.104.3", "M3D"),  # Encapsulated STL
    "model/obj": DocumentIod("1.2.840.10008.5.1.4.1.1.104.4", "M3D"),  # Encapsulated OBJ
    "model/mtl": DocumentIod("1.2.840.10008.5.1.4.1.1.104.5", "M3D"),  # Encapsulated MTL
}
PDF = "application/pdf"
