"""create-dicom's body as `multipart/related` (RFC 2387): the JSON request, then each file as it is.

A video of a few hundred MB as base64 inside JSON costs a third more bytes, and decoding it a copy.
Sent as a part of its own, a file's bytes are read where they lie in the body. The JSON part is the
usual create-dicom request; where it would hold a data URI (`Content`, or the `Content` of a series'
items) it names a part by its Content-ID instead, as a `cid:` URL (RFC 2392):

    Content-Type: multipart/related; type="application/json"; boundary=b

    --b
    Content-Type: application/json

    {"Tags": {"PatientName": "Doe^John"}, "Content": "cid:video"}
    --b
    Content-Type: video/mp4
    Content-ID: <video>

    ...the file's bytes...
    --b--

The JSON part is the one the `start` parameter names, else the first. Every other part needs a
Content-Type (the file's MIME type, as a data URI would give it) and a Content-ID, used once, and
must be referred to: a part nobody names is refused rather than silently dropped.
"""
import dataclasses
import re

from ..errors import BadRequest

MULTIPART = "multipart/related"
MAX_HEADER_BYTES = 16 * 1024  # a part's header block longer than this is refused
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# An unquoted value may hold a "/" (type=application/json), as clients write it although RFC 2045 would quote it.
_PARAMETER = re.compile(r";\s*(" + _TOKEN + r")\s*=\s*(?:([^;\"\s]+)|\"((?:[^\"\\]|\\.)*)\")\s*")
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")  # RFC 2046


@dataclasses.dataclass(frozen=True)
class Part:
    """One file of the body, in place: `data[start:end]`, of type `mime`."""

    mime: str
    data: bytes = dataclasses.field(repr=False)
    start: int
    end: int

    def decode(self):
        """The file's bytes (one copy of this part, none of the rest of the body)."""
        return self.data[self.start:self.end]


def media_type(content_type):
    """(the lower-cased type/subtype of a Content-Type header, its parameters {lower-cased name: value}).

    Raises:
        BadRequest: parameters that cannot be read.
    """
    head, _, rest = (content_type or "").partition(";")
    parameters, at = {}, 0
    rest = ";" + rest if rest else ""
    while at < len(rest):
        match = _PARAMETER.match(rest, at)
        if match is None:
            raise BadRequest("Content-Type: cannot read its parameters")
        value = match.group(2) if match.group(2) is not None else re.sub(r"\\(.)", r"\1", match.group(3))
        parameters[match.group(1).lower()] = value
        at = match.end()
    return head.strip().lower(), parameters


def is_multipart(content_type):
    """Whether a create-dicom body of this Content-Type is multipart/related."""
    return media_type_name(content_type) == MULTIPART


def media_type_name(content_type):
    return (content_type or "").partition(";")[0].strip().lower()


def _headers(block):
    headers = {}
    for line in block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise BadRequest("multipart/related: a part's header line is not `Name: value`")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


def _content_id(value):
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    if not value:
        raise BadRequest("multipart/related: an empty Content-ID")
    return value


def split(body, content_type, max_parts):
    """(the JSON request's bytes, {"cid:ID": Part}) of a multipart/related body.

    Raises:
        BadRequest: no boundary, a malformed part, a part without Content-Type or Content-ID, a
            Content-ID used twice, more than `max_parts` files, or a JSON part that is not JSON.
    """
    kind, parameters = media_type(content_type)
    boundary = parameters.get("boundary")
    if kind != MULTIPART or not boundary or not _BOUNDARY.match(boundary):
        raise BadRequest("multipart/related needs a boundary parameter (1 to 70 characters, RFC 2046)")
    if parameters.get("type", "application/json").lower() != "application/json":
        raise BadRequest("multipart/related: its type parameter must be application/json (the request)")
    delimiter = b"--" + boundary.encode("latin-1")
    view = memoryview(body)
    if body.startswith(delimiter):
        at = 0
    else:
        at = body.find(b"\r\n" + delimiter)  # after a preamble
        if at < 0:
            raise BadRequest("multipart/related: no part starts with the boundary")
        at += 2
    parts = []  # (headers, start, end)
    separator = b"\r\n" + delimiter
    while True:
        at += len(delimiter)
        if view[at:at + 2] == b"--":
            break  # the close delimiter
        line_end = body.find(b"\r\n", at)
        if line_end < 0 or view[at:line_end].tobytes().strip(b" \t"):
            raise BadRequest("multipart/related: a boundary line is not followed by a line break")
        header_end = body.find(b"\r\n\r\n", line_end, line_end + MAX_HEADER_BYTES + 4)
        if header_end < 0:
            raise BadRequest("multipart/related: a part's headers do not end within %d bytes" % MAX_HEADER_BYTES)
        headers = _headers(body[line_end + 2:header_end]) if header_end > line_end else {}
        start = header_end + 4
        end = body.find(separator, start)
        if end < 0:
            raise BadRequest("multipart/related: the body ends inside a part (no close delimiter)")
        parts.append((headers, start, end))
        if len(parts) > max_parts + 1:
            raise BadRequest("multipart/related: more than %d files (AdvancedRest.MaxInstancesPerRequest)"
                             % max_parts)
        at = end + 2
    if not parts:
        raise BadRequest("multipart/related: no part")
    root_index = 0
    if "start" in parameters:
        wanted = _content_id(parameters["start"])
        found = [i for i, (headers, _, _) in enumerate(parts) if "content-id" in headers
                 and _content_id(headers["content-id"]) == wanted]
        if not found:
            raise BadRequest("multipart/related: no part has the Content-ID its start parameter names")
        root_index = found[0]
    headers, start, end = parts[root_index]
    if media_type_name(headers.get("content-type", "application/json")) != "application/json":
        raise BadRequest("multipart/related: the request's part must be application/json")
    files = {}
    for index, (headers, part_start, part_end) in enumerate(parts):
        if index == root_index:
            continue
        if "content-id" not in headers or "content-type" not in headers:
            raise BadRequest("multipart/related: part %d needs a Content-Type and a Content-ID" % (index + 1))
        key = "cid:" + _content_id(headers["content-id"])
        if key in files:
            raise BadRequest("multipart/related: the Content-ID %s is used twice" % key[4:])
        files[key] = Part(media_type_name(headers["content-type"]), body, part_start, part_end)
    return body[start:end], files
