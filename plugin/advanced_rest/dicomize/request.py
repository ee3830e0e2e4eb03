"""The create-dicom body -> a frozen, type-checked request (no tag is interpreted yet)."""
import dataclasses
import json

from ..errors import AdvancedRestError, BadRequest, ParameterOutOfRange
from . import charsets

CREATE_DICOM_USE_DATA_URI_SCHEME = 2023
CREATE_DICOM_BAD_PARENT = 2024


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


def parse(body):
    """The CreateRequest in a request body (bytes).

    Raises:
        BadRequest: not a JSON object, or a field of the wrong type.
        ParameterOutOfRange: an unknown Specific Character Set.
        AdvancedRestError: 2023 when Content is neither a string nor an array.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("The body must be a JSON object")
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
