"""Data URIs (`data:MIME;base64,...`) as the core parses them, and what each MIME type is."""
import binascii
import dataclasses
import re

from ..errors import BadFileFormat, ParameterOutOfRange

# The core accepts exactly `data:MIME;base64,PAYLOAD`, case-insensitively, with nothing
# around it. Only the header goes through a regular expression: the payload can be
# megabytes, and bytes.translate checks its alphabet an order of magnitude faster.
_HEADER = re.compile(r"data:([^;]+);base64,", re.IGNORECASE)
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

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
    # Beyond the core, which answers 400 "Unknown MIME type" for them: video kept as it comes.
    "video/mp4": "video/mp4",
    "video/mpeg": "video/mpeg",
}


@dataclasses.dataclass(frozen=True)
class DataUri:
    """A decoded data URI: its MIME type as written (lower-cased) and its bytes."""

    mime: str
    content: bytes


def _split(text):
    """(MIME, payload bytes) of a data URI, or None."""
    match = _HEADER.match(text)
    if match is None:
        return None
    try:
        payload = text[match.end():].encode("ascii")
    except UnicodeEncodeError:
        return None
    if payload.translate(None, _BASE64_ALPHABET):
        return None
    return match.group(1), payload


def mime_of(text):
    """The lower-cased MIME type in a data URI's header, or None (the payload is not checked)."""
    match = _HEADER.match(text)
    return match.group(1).lower() if match else None


def is_data_uri(text):
    """Whether `text` has the exact shape of a data URI the core decodes."""
    return _split(text) is not None


def decode_base64(payload):
    """Base64 as the core decodes it: padding optional, an incomplete last quantum dropped.

    Raises:
        BadFileFormat: on a character outside the base64 alphabet.
    """
    if isinstance(payload, str):
        try:
            payload = payload.encode("ascii")
        except UnicodeEncodeError:
            raise BadFileFormat("Not a valid base64 string") from None
    if payload.translate(None, _BASE64_ALPHABET):
        raise BadFileFormat("Not a valid base64 string")
    end = payload.find(b"=")
    if len(payload) % 4 == 0 and (end < 0 or end >= len(payload) - 2 and payload[end:].count(b"=") == len(payload) - end):
        # Well-formed (the usual case): decoded as is, without copying a payload of megabytes.
        try:
            return binascii.a2b_base64(payload)
        except binascii.Error as exc:
            raise BadFileFormat("Not a valid base64 string") from exc
    payload = payload.split(b"=", 1)[0]
    payload = payload[: len(payload) - (len(payload) % 4 == 1)]
    try:
        return binascii.a2b_base64(payload + b"=" * (-len(payload) % 4))
    except binascii.Error as exc:
        raise BadFileFormat("Not a valid base64 string") from exc


def parse(text, payloads=None):
    """The DataUri in `text`, or None when `text` is not a data URI.

    `payloads` (a CreateRequest's): marker -> payloads.Payload, the payload of a text ending in a marker,
    decoded from the body where it lies; and "cid:ID" -> multipart.Part, a file of a multipart body.
    """
    if payloads:
        if text[:4].lower() == "cid:" and text in payloads:  # a file of a multipart body, as it came
            part = payloads[text]
            return DataUri(part.mime, part.decode())
        match = _HEADER.match(text)
        payload = payloads.get(text[match.end():]) if match else None
        if payload is not None:
            return DataUri(match.group(1).lower(), payload.decode())
    split = _split(text)
    if split is None:
        return None
    mime, payload = split
    return DataUri(mime.lower(), decode_base64(payload))


def parse_known(text, payloads=None):
    """(the DataUri in `text`, its MIME type as KNOWN_MIME_TYPES names it); `payloads` as for parse.

    Raises:
        BadFileFormat: not a data URI. ParameterOutOfRange: a MIME type the core does not know.
    """
    parsed = parse(text, payloads)
    if parsed is None:
        raise BadFileFormat()
    mime = KNOWN_MIME_TYPES.get(parsed.mime)
    if mime is None:
        raise ParameterOutOfRange("Unknown MIME type: %s" % parsed.mime)
    return parsed, mime
