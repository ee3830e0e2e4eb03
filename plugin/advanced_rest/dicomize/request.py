"""The create-dicom body -> a frozen, type-checked request (no tag is interpreted yet)."""
import dataclasses
import json
import json.scanner
import re

from ..errors import AdvancedRestError, BadRequest, LimitExceeded, ParameterOutOfRange
from . import charsets

CREATE_DICOM_USE_DATA_URI_SCHEME = 2023
CREATE_DICOM_BAD_PARENT = 2024

# json.loads pairs surrogate escapes itself: what remains in a string is a lone half.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# Python's C JSON parser recurses on the C stack, once per level of nesting: on the HTTP threads
# of Orthanc 1.10.1 (Python 3.11) it overflows them from about 515 levels and Orthanc dies, before
# any RecursionError. A body with at most this many "[" and "{" cannot nest deeper: the C parser
# reads it; any other goes through json's pure-Python scanner, whose recursion stays in Python
# frames (ending in RecursionError), about 6 times slower.
SAFE_C_NESTING = 256


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
    """A parsed create-dicom body."""

    tags: dict
    legacy: bool = False
    content: object = None  # None, a string, or a tuple of Item (a series)
    parent: str = None
    interpret_binary_tags: bool = True
    private_creator: str = None  # None: Orthanc's DefaultPrivateCreator
    force: bool = False
    encoding: object = None  # charsets.Encoding from Tags' SpecificCharacterSet, or None
    encapsulate: bool = False  # keep JPEG content compressed (Orthanc 1.13's "Encapsulate")
    strict: bool = None  # None: AdvancedRest.StrictDicom decides
    asynchronous: bool = False  # run as a job (the core's "Asynchronous" / "Synchronous" fields)
    priority: int = 0  # of that job


def _field(body, name, kind, default):
    if name not in body:
        return default
    value = body[name]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise BadRequest("The %s field must be a %s" % (name, {bool: "Boolean", str: "string", int: "integer"}[kind]))
    return value


def _asynchronous(document):
    asynchronous = _field(document, "Asynchronous", bool, False)
    synchronous = _field(document, "Synchronous", bool, not asynchronous)
    return asynchronous or not synchronous


def _parent(document):
    if "Parent" not in document:
        return None
    parent = document["Parent"]
    if not isinstance(parent, str):
        # The core looks a non-string up as an id, and finds nothing.
        raise AdvancedRestError(code=CREATE_DICOM_BAD_PARENT)
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


def parse(body, limits=None):
    """The CreateRequest in a request body (bytes), checked against `limits` (None: the defaults).

    Raises:
        BadRequest: not a JSON object, a field of the wrong type, or a lone surrogate in a string.
        LimitExceeded: sequences, elements or instances beyond `limits`.
        ParameterOutOfRange: an unknown Specific Character Set.
        AdvancedRestError: 2023 when Content is neither a string nor an array.
    """
    limits = limits or Limits()
    try:
        document = _load(body)
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

    tags = document["Tags"]
    if not isinstance(tags, dict):
        raise BadRequest("The Tags field must be a JSON object")
    encoding = None
    if "SpecificCharacterSet" in tags:
        term = tags["SpecificCharacterSet"]
        encoding = charsets.from_term(term) if isinstance(term, str) else None
        if encoding is None:
            raise ParameterOutOfRange("Unknown Specific Character Set: %r" % (term,))

    content = document.get("Content")
    if isinstance(content, list):
        content = _items(content) if content else None
    elif not isinstance(content, str) and "Content" in document:
        raise AdvancedRestError(code=CREATE_DICOM_USE_DATA_URI_SCHEME)
    return CreateRequest(
        tags=tags,
        content=content,
        parent=_parent(document),
        interpret_binary_tags=_field(document, "InterpretBinaryTags", bool, True),
        private_creator=_field(document, "PrivateCreator", str, None),
        force=_field(document, "Force", bool, False),
        encoding=encoding,
        encapsulate=_field(document, "Encapsulate", bool, False),
        strict=_field(document, "Strict", bool, None),
        asynchronous=_asynchronous(document),
        priority=_field(document, "Priority", int, 0),
    )
