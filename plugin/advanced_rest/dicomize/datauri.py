"""Data URIs (`data:MIME;base64,...`) as the core parses them, and what each MIME type is."""
import base64
import binascii
import dataclasses
import re

from ..errors import BadFileFormat

# The core accepts exactly this shape, case-insensitively, and nothing around it.
_DATA_URI = re.compile(r"data:([^;]+);base64,([a-zA-Z0-9=+/]*)", re.IGNORECASE)

# MIME strings the core knows, lower-cased -> the name it prints for them.
KNOWN_MIME_TYPES = {
    "application/octet-stream": "application/octet-stream",
    "application/dicom": "application/dicom",
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",  # tolerated by the core although not standard
    "image/jp2": "image/jp2",
    "application/json": "application/json",
    "application/pdf": "application/pdf",
    "image/png": "image/png",
    "application/xml": "application/xml",
    "text/xml": "application/xml",
    "text/plain": "text/plain",
    "image/x-portable-arbitrarymap": "image/x-portable-arbitrarymap",
    "text/html": "text/html",
    "application/gzip": "application/gzip",
    "application/javascript": "application/javascript",
    "text/css": "text/css",
    "application/wasm": "application/wasm",
    "image/gif": "image/gif",
    "application/zip": "application/zip",
    "application/x-nacl": "application/x-nacl",
    "application/x-pnacl": "application/x-pnacl",
    "image/svg+xml": "image/svg+xml",
    "application/x-font-woff": "application/x-font-woff",
    "font/woff2": "font/woff2",
    "application/dicom+json": "application/dicom+json",
    "application/dicom+xml": "application/dicom+xml",
    "image/x-icon": "image/x-icon",
    "model/obj": "model/obj",
    "model/mtl": "model/mtl",
    "model/stl": "model/stl",
}


@dataclasses.dataclass(frozen=True)
class DataUri:
    """A decoded data URI: its MIME type as written (lower-cased) and its bytes."""

    mime: str
    content: bytes


def is_data_uri(text):
    """Whether `text` has the exact shape of a data URI the core decodes."""
    return _DATA_URI.fullmatch(text) is not None


def decode_base64(text):
    """Base64 as the core decodes it: padding optional, an incomplete last quantum dropped.

    Raises:
        BadFileFormat: on a character outside the base64 alphabet.
    """
    if re.search(r"[^A-Za-z0-9+/=]", text):
        raise BadFileFormat("Not a valid base64 string")
    text = text.split("=", 1)[0]
    text = text[: len(text) - (len(text) % 4 == 1)]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise BadFileFormat("Not a valid base64 string") from exc


def parse(text):
    """The DataUri in `text`, or None when `text` is not a data URI."""
    match = _DATA_URI.fullmatch(text)
    if match is None:
        return None
    return DataUri(match.group(1).lower(), decode_base64(match.group(2)))
