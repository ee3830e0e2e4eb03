"""The create-dicom body -> a frozen, type-checked request (no tag is interpreted yet)."""
import dataclasses
import json
import json.scanner
import re

from ..errors import BadRequest, InexistentParent, LimitExceeded, ParameterOutOfRange, UseDataUriScheme
from . import charsets, payloads as payloads_

# json.loads pairs surrogate escapes itself: what remains in a string is a lone half.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# Python's C JSON parser recurses on the C stack, once per level of nesting: on the HTTP threads
# of Orthanc 1.10.1 (Python 3.11) it overflows them from about 515 levels and Orthanc dies, before
# any RecursionError. A body with at most this many "[" and "{" cannot nest deeper: the C parser
# reads it; any other goes through json's pure-Python scanner, whose recursion stays in Python
# frames (ending in RecursionError), about 6 times slower.
SAFE_C_NESTING = 256


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of the body: its JSON type(s), its value when absent, and what it does."""

    json_type: object  # a JSON Schema type name, or a tuple of them
    default: object
    description: str


# The fields of a create-dicom body (with Tags): the parser below reads these, and the OpenAPI
# description is derived from them. A body without Tags is the core's older form, tags only.
FIELDS = {
    "Tags": Field("object", None, "tag name or gggg,eeee -> value, as in the core"),
    "Content": Field(("string", "array"), None,
                     "a data URI (image, PDF, 3D model, raw pixels), or an array making a series: data URIs, "
                     "or objects with Content and their own Tags"),
    "Parent": Field("string", None, "the Orthanc id of a patient, study or series to attach the new instance to"),
    "PrivateCreator": Field("string", None, "for private tags; absent: Orthanc's DefaultPrivateCreator"),
    "Force": Field("boolean", False, "let Tags override the identifiers and tags Orthanc generates"),
    "InterpretBinaryTags": Field("boolean", True, "read data URIs in binary tags' values as their content"),
    "Encapsulate": Field("boolean", False, "keep JPEG content compressed (JPEG Baseline transfer syntax); JPEG 2000 "
                                          "(image/jp2) and video (video/mp4, video/mpeg) are always kept as they come"),
    "MultiFrame": Field("boolean", False,
                        "with a Content array of images: one multi-frame instance (Multi-frame Secondary Capture) "
                        "of those frames instead of a series; every frame of one size, depth and colour"),
    "Asynchronous": Field("boolean", False, "run as a job: the answer is the job's {ID, Path}"),
    "Synchronous": Field("boolean", True, "false: the same as Asynchronous true"),
    "Priority": Field("integer", 0, "of the job (higher first)"),
    "Strict": Field("boolean", None, "complete the instance into a conformant IOD; absent: AdvancedRest.StrictDicom"),
}

# JSON Schema type name -> the Python type json.loads gives it.
_PYTHON_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}


def _names(json_type):
    return json_type if isinstance(json_type, tuple) else (json_type,)


def _conforms(value, json_type):
    """Whether `value` (from json.loads) has the JSON type, or one of the types, `json_type` names."""
    for name in _names(json_type):
        python_type = _PYTHON_TYPES[name]
        # bool is an int in Python, not in JSON
        if isinstance(value, python_type) and not (python_type is int and isinstance(value, bool)):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on a request's structure (AdvancedRest.MaxSequenceDepth, MaxElements, MaxInstancesPerRequest)."""

    max_sequence_depth: int = 16
    max_elements: int = 10000
    max_instances: int = 1000


@dataclasses.dataclass(frozen=True)
class Item:
    """One instance of a series: its content (any JSON, checked when built) and own tags."""

    content: object
    tags: object = None
    has_content: bool = True


@dataclasses.dataclass(frozen=True)
class CreateRequest:
    """A parsed create-dicom body (defaults: those of FIELDS)."""

    tags: dict
    legacy: bool = False  # a body without Tags: its fields are the tags
    content: object = None  # None, a string, or a tuple of Item (a series)
    parent: str = None
    interpret_binary_tags: bool = FIELDS["InterpretBinaryTags"].default
    private_creator: str = FIELDS["PrivateCreator"].default  # None: Orthanc's DefaultPrivateCreator
    force: bool = FIELDS["Force"].default
    encoding: object = None  # charsets.Encoding from Tags' SpecificCharacterSet, or None
    encapsulate: bool = FIELDS["Encapsulate"].default
    multi_frame: bool = FIELDS["MultiFrame"].default  # a Content array makes one instance of its frames
    strict: bool = FIELDS["Strict"].default  # None: AdvancedRest.StrictDicom decides
    asynchronous: bool = FIELDS["Asynchronous"].default  # from Asynchronous and Synchronous
    priority: int = FIELDS["Priority"].default
    # The large base64 payloads of Content (its items' too) left in the body: marker -> payloads.Payload
    # (datauri.parse reads them there); None when there is none.
    payloads: dict = dataclasses.field(default=None, compare=False, repr=False)


def _field(document, name):
    """The value of field `name` (of FIELDS), or its default when absent.

    Raises:
        BadRequest: a value of another JSON type.
    """
    declared = FIELDS[name]
    if name not in document:
        return declared.default
    value = document[name]
    if not _conforms(value, declared.json_type):
        raise BadRequest("The %s field must be a JSON %s" % (name, " or ".join(_names(declared.json_type))))
    return value


def _asynchronous(document):
    return _field(document, "Asynchronous") or not _field(document, "Synchronous")


def _parent(document):
    if "Parent" not in document:
        return None
    parent = document["Parent"]
    if not _conforms(parent, FIELDS["Parent"].json_type):
        # The core looks a non-string up as an id, and finds nothing.
        raise InexistentParent()
    return parent


def _items(content):
    items = []
    for entry in content:
        if isinstance(entry, dict):
            items.append(Item(entry.get("Content"), entry.get("Tags"), "Content" in entry))
        else:
            items.append(Item(entry))
    return tuple(items)


def _too_deep(limits, what="Sequences in Tags nest"):
    return LimitExceeded("%s deeper than AdvancedRest.MaxSequenceDepth (%d) allows" % (what, limits.max_sequence_depth))


def _check_text(text):
    # Orthanc's JSON reader refuses a lone high surrogate with 400 (code 8), 1.10 to 1.13; a lone
    # low one it passes on into ill-formed UTF-8 or drops: both are refused here.
    if not text.isascii() and _LONE_SURROGATE.search(text):
        raise BadRequest("A string of the body holds a lone UTF-16 surrogate: it is not Unicode text")


def _tag_sets(document):
    """The objects of the body that map tag names to values (what MaxElements counts)."""
    if "Tags" not in document:
        return [document]  # a legacy body is its own tags
    sets = [document["Tags"]]
    content = document.get("Content")
    if isinstance(content, list):
        sets += [item["Tags"] for item in content if isinstance(item, dict) and "Tags" in item]
    return sets


def _check_structure(document, limits):
    """Refuse a body beyond `limits`, or with a lone surrogate, before anything is built from it.

    The walk keeps its own stack: no Python recursion, whatever the nesting.
    """
    content = document.get("Content") if "Tags" in document else None
    if isinstance(content, list) and len(content) > limits.max_instances:
        raise LimitExceeded("Content has %d instances, more than AdvancedRest.MaxInstancesPerRequest (%d)"
                            % (len(content), limits.max_instances))
    tag_sets = {id(tags) for tags in _tag_sets(document) if isinstance(tags, dict)}
    elements = 0
    # (JSON value, sequence depth): depth is None outside tags, else the depth of the
    # item (0: the top level of a tag set) whose tag holds the value.
    stack = [(document, None)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict):
            if depth is None and id(value) in tag_sets:
                depth = 0
            if depth is not None:
                elements += len(value)
                if elements > limits.max_elements:
                    raise LimitExceeded("Tags have more than AdvancedRest.MaxElements (%d) elements"
                                        % limits.max_elements)
            for key, entry in value.items():
                _check_text(key)
                stack.append((entry, depth))
        elif isinstance(value, list):
            if depth is None:
                stack.extend((entry, None) for entry in value)
                continue
            # A list in tags is a sequence: its items sit one level deeper. An item written
            # as a list ([] is an empty item) holds values at that level too.
            depth += 1
            if depth > limits.max_sequence_depth:
                raise _too_deep(limits)
            for entry in value:
                if isinstance(entry, list):
                    stack.extend((inner, depth) for inner in entry)
                else:
                    stack.append((entry, depth))


def _few_openings(text, bound):
    """Whether `text` has at most `bound` "[" and "{" (each found at memchr speed, stopping early)."""
    count = 0
    for opening in "[{":
        at = text.find(opening)
        while at >= 0:
            count += 1
            if count > bound:
                return False
            at = text.find(opening, at + 1)
    return True


def _load(body):
    """The JSON document in `body` (bytes, in any encoding json.loads detects, or str).

    Raises:
        ValueError, UnicodeDecodeError: not JSON.
        RecursionError: nested beyond Python's recursion limit.
    """
    text = body if isinstance(body, str) else body.decode(json.detect_encoding(body), "surrogatepass")
    if _few_openings(text, SAFE_C_NESTING):
        return json.loads(text)
    decoder = json.JSONDecoder()
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    return decoder.decode(text)


def _in_content(path):
    """Whether `path` (keys and indexes from the top of a body with Tags) leads to a data URI of Content."""
    return path[0] == "Content" and (len(path) == 1 or len(path) == 2 and isinstance(path[1], int)
                                     or len(path) == 3 and isinstance(path[1], int) and path[2] == "Content")


def _load_large(body):
    """(the JSON document in `body`, the payloads of Content left in the body, or None), for a large body
    in UTF-8: the long base64 runs are not copied into the document's strings (payloads.py)."""
    if len(body) < payloads_.LARGE or isinstance(body, str) or json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
        return _load(body), None
    smaller, cuts = payloads_.cut(body)
    if not cuts:
        return _load(body), None
    document = _load(smaller)
    del smaller
    if isinstance(document, dict):
        kept = _in_content if "Tags" in document else (lambda path: False)
        found = payloads_.restore(document, cuts, kept)
        if found is not None:
            return document, found or None
    return _load(body), None  # a marker it could not put back: the body as it is


def _files_named(content, files):
    """Check that Content names, by `cid:`, exactly the files of a multipart body (multipart.py).

    Raises:
        BadRequest: a name no part has, or a part no one names (it would be dropped unseen).
    """
    texts = [content] if isinstance(content, str) else [item.content for item in content or ()]
    named = {text for text in texts if isinstance(text, str) and text[:4].lower() == "cid:"}
    unknown = sorted(named - set(files))
    if unknown:
        raise BadRequest("Content names %s, which no part of the multipart body has (by its Content-ID)" % unknown[0])
    unnamed = sorted(set(files) - named)
    if unnamed:
        raise BadRequest("The part with Content-ID %s is named by no Content" % unnamed[0][4:])


def parse(body, limits=None, files=None):
    """The CreateRequest in a request body (bytes), checked against `limits` (None: the defaults); `files`:
    the other parts of a multipart/related body ({"cid:ID": multipart.Part}), which Content names.

    Raises:
        BadRequest: not a JSON object, a field of the wrong type, or a lone surrogate in a string.
        LimitExceeded: sequences, elements or instances beyond `limits`.
        ParameterOutOfRange: an unknown Specific Character Set.
        UseDataUriScheme: Content neither a string nor an array (the core's 2023).
        InexistentParent: a Parent that is not a string (the core's 2024).
    """
    limits = limits or Limits()
    try:
        document, found = _load_large(body)
    except RecursionError:
        # Python's recursion limit: about 1000 levels (Orthanc 1.10.1 and 1.13.0 die from about 190).
        raise _too_deep(limits, "The JSON body nests") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("The body must be a JSON object")
    _check_structure(document, limits)
    if "Tags" not in document:
        return CreateRequest(tags=document, legacy=True)

    tags = _field(document, "Tags")
    encoding = None
    if "SpecificCharacterSet" in tags:
        term = tags["SpecificCharacterSet"]
        encoding = charsets.from_term(term) if isinstance(term, str) else None
        if encoding is None:
            raise ParameterOutOfRange("Unknown Specific Character Set: %r" % (term,))

    content = document.get("Content")
    if "Content" in document and not _conforms(content, FIELDS["Content"].json_type):
        raise UseDataUriScheme()
    if isinstance(content, list):
        content = _items(content) if content else None
    if files is not None:
        _files_named(content, files)
        found = dict(found or {}, **files)
    return CreateRequest(
        tags=tags,
        content=content,
        parent=_parent(document),
        interpret_binary_tags=_field(document, "InterpretBinaryTags"),
        private_creator=_field(document, "PrivateCreator"),
        force=_field(document, "Force"),
        encoding=encoding,
        encapsulate=_field(document, "Encapsulate"),
        multi_frame=_field(document, "MultiFrame"),
        strict=_field(document, "Strict"),
        asynchronous=_asynchronous(document),
        priority=_field(document, "Priority"),
        payloads=found,
    )
