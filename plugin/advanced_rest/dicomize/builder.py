"""A CreateRequest -> the DICOM files the core would create for it, in memory."""
import collections
import dataclasses
import struct

from ..errors import (AdvancedRestError, BadFileFormat, BadParameterType, BadRequest, NoPayload, NotString,
                      OverrideTag, ParameterOutOfRange, UnsupportedFormat, UseContent, UseDataUriScheme)
from . import charsets, datauri, frames, images, jpeg2000, strict, values, video, writer
from .documents import DOCUMENTS, PDF
from .dictionary import format_tag, is_private
from .request import Item
from .writer import Element

PATIENT_ID = 0x00100020
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
SOP_INSTANCE_UID = 0x00080018
SOP_CLASS_UID = 0x00080016
SPECIFIC_CHARACTER_SET = 0x00080005
PIXEL_DATA = 0x7FE00010
MODALITY = 0x00080060
PHOTOMETRIC_INTERPRETATION = 0x00280004
ENCAPSULATED_DOCUMENT = 0x00420011
NUMBER_OF_FRAMES = 0x00280008
FRAME_INCREMENT_POINTER = 0x00280009
FRAME_TIME = 0x00181063
CINE_RATE = 0x00180040
PAGE_NUMBER_VECTOR = 0x00182001
JPEG_BASELINE = frames.JPEG_BASELINE

# Generated tags that a request may override without "Force".
_OVERRIDABLE = frozenset({
    PATIENT_ID,
    0x00080022, 0x00080032,  # Acquisition Date/Time
    0x00080023, 0x00080033,  # Content Date/Time
    0x00080012, 0x00080013,  # Instance Creation Date/Time
    0x00080021, 0x00080031,  # Series Date/Time
    0x00080020, 0x00080030,  # Study Date/Time
})

_IMAGES = {"image/png": "png", "image/jpeg": "jpeg", "image/x-portable-arbitrarymap": "pam"}

# Pixel format -> (samples per pixel, bits allocated, photometric interpretation or None for monochrome).
_PIXEL_MODULES = {
    images.GRAY8: (1, 8, None),
    images.GRAY16: (1, 16, None),
    images.RGB24: (3, 8, "RGB"),
    images.RGB48: (3, 16, "RGB"),
}


@dataclasses.dataclass(frozen=True)
class Environment:
    """What building needs from outside: dictionary, defaults, clock and UID source."""

    dictionary: object
    default_encoding: object  # charsets.Encoding
    default_private_creator: str
    max_image_pixels: int
    strict: bool  # AdvancedRest.StrictDicom, when the request does not say
    software_version: str  # written by Strict where an IOD names the producing software
    now: object  # a datetime in UTC
    new_uid: object  # callable -> str
    new_patient_id: object  # callable -> str
    item_uid: object = None  # callable(index) -> SOP Instance UID of a series item; None: new_uid
    max_image_bytes: int = 256 * 1024 * 1024  # decoded bytes of one image (AdvancedRest.MaxImageBytes)


def _us(value):
    return struct.pack("<H", value)


def _text(value):
    return value.encode("ascii")


class _Instance:
    """One dataset under construction, with the encoding its strings are written in."""

    def __init__(self, env, elements=None, encoding=None):
        self.env = env
        self.elements = dict(elements or {})
        self.encoding = encoding or env.default_encoding
        self.transfer_syntax = writer.EXPLICIT_VR_LITTLE_ENDIAN
        self.kind = None  # what only the plugin makes: "multi-frame", "video", "jpeg2000"; None: as the core

    def copy(self):
        return _Instance(self.env, self.elements, self.encoding)

    def context(self, private_creator="", decode=False):
        return values.Context(self.env.dictionary, self.encoding, private_creator, decode)

    def set_string(self, tag, text):
        """The core's "replace plain string": text converted by the tag's VR."""
        vr = self.env.dictionary.vr(tag)
        if text == "":
            self.elements[tag] = Element(values.concrete_vr(vr), b"")
        else:
            self.elements[tag] = values.element_from_string(tag, vr, text, self.context())

    def set_if_absent(self, tag, text):
        if tag not in self.elements:
            self.set_string(tag, text)

    def set_encoding(self, encoding):
        self.encoding = encoding
        if encoding.term:
            self.elements[SPECIFIC_CHARACTER_SET] = Element("CS", _text(encoding.term))


def _new_instance(env):
    instance = _Instance(env)
    instance.elements[PATIENT_ID] = Element("LO", _text(env.new_patient_id()))
    for tag in (STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID):
        instance.elements[tag] = Element("UI", _text(env.new_uid()))
    return instance


# ---- tags ------------------------------------------------------------------------

def _inject_tags(instance, tags, request, private_creator):
    if not isinstance(tags, dict):
        raise BadRequest("Tags must be a JSON object")
    context = instance.context(private_creator, request.interpret_binary_tags)
    for name in sorted(tags):
        tag = instance.env.dictionary.parse_tag(name)
        if tag == SPECIFIC_CHARACTER_SET:
            continue  # chosen before, from the name "SpecificCharacterSet" only
        if not request.force and tag not in _OVERRIDABLE and tag in instance.elements:
            raise OverrideTag(name)
        if tag == PIXEL_DATA:
            raise UseContent()
        if tag & 0xFFFF == 0 or tag >> 16 == 0x0002:
            continue  # group lengths and the file meta are written from the dataset
        value = tags[name]
        if tag == ENCAPSULATED_DOCUMENT and request.interpret_binary_tags and isinstance(value, str) \
                and datauri.is_data_uri(value):
            embed_content(instance, value)  # the core treats it as Content
            continue
        if tag in (SOP_CLASS_UID, SOP_INSTANCE_UID) and not isinstance(value, str):
            raise BadParameterType("Tag %s (%s) takes a string" % (format_tag(tag), name))
        if isinstance(value, str) and value == "":
            vr = instance.env.dictionary.vr(tag, private_creator if is_private(tag) else "")
            instance.elements[tag] = Element(values.concrete_vr(vr), b"")
        else:
            instance.elements[tag] = values.element_from_json(tag, value, context)


# ---- content -----------------------------------------------------------------------

def _embed_pixels(instance, pixels, photometric_of_color=None):
    samples, bits, photometric = _PIXEL_MODULES[pixels.format]
    if photometric and photometric_of_color:
        photometric = photometric_of_color
    elements = instance.elements
    elements.pop(PIXEL_DATA, None)
    elements[0x00280011] = Element("US", _us(pixels.width))  # Columns
    elements[0x00280010] = Element("US", _us(pixels.height))  # Rows
    elements[0x00280002] = Element("US", _us(samples))
    elements[0x00280103] = Element("US", _us(0))  # unsigned pixels
    if photometric:
        elements[PHOTOMETRIC_INTERPRETATION] = Element("CS", _text(photometric))
        elements[0x00280006] = Element("US", _us(0))  # interleaved colour channels
    else:
        instance.set_if_absent(PHOTOMETRIC_INTERPRETATION, "MONOCHROME2")
    elements[0x00280100] = Element("US", _us(bits))
    elements[0x00280101] = Element("US", _us(bits))
    elements[0x00280102] = Element("US", _us(bits - 1))
    if isinstance(pixels.data, writer.Fragments):
        elements[PIXEL_DATA] = Element("OB", pixels.data)
    else:
        elements[PIXEL_DATA] = Element("OW", pixels.data)


def _encapsulate_jpeg(instance, content):
    env = instance.env
    fmt, width, height = images.jpeg_geometry(content, env.max_image_pixels, env.max_image_bytes)
    # Orthanc 1.13 labels every colour JPEG YBR_FULL_422, whatever its subsampling.
    _embed_pixels(instance, images.Pixels(fmt, width, height, writer.Fragments((content,))), "YBR_FULL_422")
    instance.transfer_syntax = JPEG_BASELINE


def _embed_jpeg2000(instance, content):
    """The codestream as it comes, in one fragment, under the transfer syntax of its wavelet."""
    env = instance.env
    image = jpeg2000.read(content)
    images.check_size(image.width, image.height, image.samples * image.bits_allocated // 8, env.max_image_pixels,
                      env.max_image_bytes)
    elements = instance.elements
    elements.pop(PIXEL_DATA, None)
    elements[0x00280011] = Element("US", _us(image.width))  # Columns
    elements[0x00280010] = Element("US", _us(image.height))  # Rows
    elements[0x00280002] = Element("US", _us(image.samples))
    elements[0x00280103] = Element("US", _us(1 if image.signed else 0))
    elements[PHOTOMETRIC_INTERPRETATION] = Element("CS", _text(image.photometric))
    if image.samples == 3:
        elements[0x00280006] = Element("US", _us(0))  # the codec interleaves what it decodes
    elements[0x00280100] = Element("US", _us(image.bits_allocated))
    elements[0x00280101] = Element("US", _us(image.bits_stored))
    elements[0x00280102] = Element("US", _us(image.bits_stored - 1))
    elements[PIXEL_DATA] = Element("OB", writer.Fragments((image.codestream,)))
    instance.transfer_syntax = image.transfer_syntax
    instance.kind = "jpeg2000"
    if not image.reversible:
        instance.set_string(0x00282110, "01")  # Lossy Image Compression
        instance.set_string(0x00282114, "ISO_15444_1")  # Lossy Image Compression Method


# Modality -> the video IOD (PS3.3 A.32.5-A.32.7) that a video of it makes; any other: Video Photographic.
VIDEO_IODS = {
    "ES": "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image
    "GM": "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image
}
VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"


def _embed_video(instance, mime, content):
    """The stream as it comes, in one fragment (the offset table stays empty, as PS3.5 A.4 asks of video),
    described by what its headers say; Frame Time and Cine Rate are the stream's."""
    stream = video.READERS[mime](content)
    pixels = images.Pixels(images.RGB24, stream.width, stream.height, writer.Fragments((content,), table=False))
    _embed_pixels(instance, pixels, "YBR_PARTIAL_420")
    elements = instance.elements
    if stream.bits_stored != 8:
        elements[0x00280100] = Element("US", _us(stream.bits_allocated))
        elements[0x00280101] = Element("US", _us(stream.bits_stored))
        elements[0x00280102] = Element("US", _us(stream.bits_stored - 1))
    instance.kind = "video"
    instance.transfer_syntax = stream.transfer_syntax
    elements[NUMBER_OF_FRAMES] = Element("IS", _text(str(stream.frames)))
    elements[FRAME_INCREMENT_POINTER] = Element("AT", _at(FRAME_TIME))
    instance.set_string(FRAME_TIME, "%.6g" % stream.frame_time)
    instance.set_string(CINE_RATE, str(max(1, round(1000.0 / stream.frame_time))))
    instance.set_string(0x00282110, "01")  # Lossy Image Compression
    instance.set_string(0x00282114, stream.compression)  # Lossy Image Compression Method
    modality = elements.get(MODALITY)
    modality = modality.value.decode("ascii", "replace").strip() if modality is not None else ""
    instance.set_if_absent(SOP_CLASS_UID, VIDEO_IODS.get(modality, VIDEO_PHOTOGRAPHIC))
    if not modality:
        instance.set_string(MODALITY, "XC")  # external-camera photography, the Video Photographic IOD's


def _embed_document(instance, mime, document):
    sop_class, modality = DOCUMENTS[mime]
    instance.elements[0x00420012] = Element("LO", _text(mime))  # MIME Type of Encapsulated Document
    # The core pads an odd document with one NUL byte (the writer does the same).
    instance.elements[0x00420011] = Element("OB", document)
    instance.set_if_absent(SOP_CLASS_UID, sop_class)
    instance.set_if_absent(MODALITY, modality)
    if mime == PDF:
        instance.set_if_absent(0x00080064, "WSD")  # Conversion Type


def embed_content(instance, text, encapsulate=False, payloads=None):
    """Put the data URI `text` into the instance: an image, a video, a document or raw pixels (`payloads`:
    the request's, see datauri.parse).

    Raises:
        BadFileFormat: not a data URI, or content that does not decode as its MIME type says.
        ParameterOutOfRange: a MIME type the core does not know.
        LimitExceeded: an image beyond AdvancedRest.MaxImagePixels or MaxImageBytes.
        UnsupportedFormat: a MIME type that cannot go into DICOM.
    """
    parsed, mime = datauri.parse_known(text, payloads)
    if mime in video.READERS:
        _embed_video(instance, mime, parsed.content)  # never decoded, whatever Encapsulate says
    elif mime == "image/jp2":
        _embed_jpeg2000(instance, parsed.content)  # likewise
    elif encapsulate:
        if mime != "image/jpeg":
            raise UnsupportedFormat("Only JPEG can be encapsulated, not %s" % mime)
        _encapsulate_jpeg(instance, parsed.content)
    elif mime in _IMAGES:
        env = instance.env
        pixels = images.decode(parsed.content, _IMAGES[mime], env.max_image_pixels, env.max_image_bytes)
        _embed_pixels(instance, pixels)
    elif mime == "application/octet-stream":
        instance.elements[PIXEL_DATA] = Element("OW", parsed.content)
    elif mime in DOCUMENTS:
        if mime == PDF and not parsed.content.startswith(b"%PDF-"):
            raise BadFileFormat("The content is not a PDF file (it does not start with %PDF-)")
        _embed_document(instance, mime, parsed.content)
    else:
        raise UnsupportedFormat("Content of type %s cannot go into a DICOM instance" % mime)


def _frame_time(instance):
    """Frame Time and Cine Rate, each from the other when the request gave only one; whether either is known."""
    elements = instance.elements
    try:
        if FRAME_TIME not in elements and CINE_RATE in elements:
            rate = float(elements[CINE_RATE].value.decode("ascii"))
            if rate > 0:
                instance.set_string(FRAME_TIME, "%.6g" % (1000.0 / rate))
        elif FRAME_TIME in elements and CINE_RATE not in elements:
            milliseconds = float(elements[FRAME_TIME].value.decode("ascii"))
            if milliseconds > 0:
                instance.set_string(CINE_RATE, str(max(1, round(1000.0 / milliseconds))))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("FrameTime and CineRate must be positive numbers") from None
    return FRAME_TIME in elements


def _at(tag):
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF)


def embed_frames(instance, items, encapsulate, payloads=None):
    """Put the images of `items` (request.Item) into the instance as its frames (MultiFrame).

    Raises:
        AdvancedRestError: as embed_content, for the frame named; BadRequest for a frame unlike the first.
    """
    env = instance.env
    read = frames.read(items, encapsulate, env.max_image_pixels, env.max_image_bytes, payloads)
    _embed_pixels(instance, images.Pixels(read.format, read.width, read.height, read.data), read.photometric)
    instance.kind = "multi-frame"
    if read.transfer_syntax:
        instance.transfer_syntax = read.transfer_syntax
    elements = instance.elements
    if read.bits_stored is not None:  # JPEG 2000: what its header says, where the format would say all bits
        elements[0x00280101] = Element("US", _us(read.bits_stored))
        elements[0x00280102] = Element("US", _us(read.bits_stored - 1))
    if read.signed:
        elements[0x00280103] = Element("US", _us(1))
    if read.photometric and read.format not in frames.COLOUR:  # a gray JPEG 2000's own (MONOCHROME1 or 2)
        elements[PHOTOMETRIC_INTERPRETATION] = Element("CS", _text(read.photometric))
    elements[NUMBER_OF_FRAMES] = Element("IS", _text(str(read.count)))
    instance.set_if_absent(SOP_CLASS_UID, frames.SOP_CLASSES[read.format])
    # Frames follow one another in time when the request says at what pace; else they are pages.
    if _frame_time(instance):
        elements[FRAME_INCREMENT_POINTER] = Element("AT", _at(FRAME_TIME))
    else:
        elements[FRAME_INCREMENT_POINTER] = Element("AT", _at(PAGE_NUMBER_VECTOR))
        elements[PAGE_NUMBER_VECTOR] = Element("IS", _text("\\".join(str(n) for n in range(1, read.count + 1))))
    if read.lossy:
        instance.set_string(0x00282110, "01")  # Lossy Image Compression
        instance.set_string(0x00282114, read.lossy)  # Lossy Image Compression Method


# ---- whole requests ------------------------------------------------------------------

def _dates(instance, parent_level):
    now = instance.env.now  # formatted by hand: strftime costs more, twice per file
    date = _text("%04d%02d%02d" % (now.year, now.month, now.day))
    time = _text("%02d%02d%02d.000000" % (now.hour, now.minute, now.second))
    stamps = [(0x00080022, 0x00080032), (0x00080023, 0x00080033), (0x00080012, 0x00080013)]
    if parent_level in (None, "Patient", "Study"):
        stamps.append((0x00080021, 0x00080031))  # Series
    if parent_level in (None, "Patient"):
        stamps.append((0x00080020, 0x00080030))  # Study
    for date_tag, time_tag in stamps:
        instance.elements[date_tag] = Element("DA", date)
        instance.elements[time_tag] = Element("TM", time)


# Beyond the core, which leaves them out: the SOP Class and Modality that a C-STORE and a PACS need, where
# neither the request, the parent nor the content gave them (README, "Sendable by default").
SECONDARY_CAPTURE = strict.SECONDARY_CAPTURE  # an image, whatever made it
RAW_DATA = "1.2.840.10008.5.1.4.1.1.66"  # no image, no document: the IOD of data no other one describes
DEFAULT_MODALITY = "OT"


def _sendable(instance):
    elements = instance.elements
    if SOP_CLASS_UID not in elements:
        instance.set_string(SOP_CLASS_UID, SECONDARY_CAPTURE if PIXEL_DATA in elements else RAW_DATA)
    instance.set_if_absent(MODALITY, DEFAULT_MODALITY)


def _complete(instance, request=None, requested=lambda: ()):
    """With Strict, the IOD completed (`requested`: () -> the tags the request set); then what makes it
    sendable, where still absent."""
    if request is not None and (instance.env.strict if request.strict is None else request.strict):
        strict.complete(instance, requested())
    _sendable(instance)


def _finish(instance, request=None, requested=lambda: ()):
    """The file's bytes, completed first (_complete)."""
    _complete(instance, request, requested)
    return writer.encode_file(instance.elements, instance.transfer_syntax)


# What Orthanc reads back from a file the plugin stores, known from what the builder wrote (metrics: the
# instance is counted without reading it back): its four identifiers, the Modality of its series (the first
# instance's: Orthanc keeps a series' main tags from it) and its transfer syntax.
Identity = collections.namedtuple("Identity", "patient_id study_uid series_uid sop_uid modality transfer_syntax")


def _plain(element):
    """The text of a string element when Orthanc reads it back the same for sure (ASCII, printable, one value,
    no space around), else None."""
    value = element.value if element is not None else None
    if type(value) is not bytes:
        return None
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.isprintable() or "\\" in text or text != text.strip():
        return None
    return text


def requested_tags(dictionary, *tag_sets):
    """The tags a request sets itself (names it cannot resolve were refused before)."""
    return {dictionary.parse_tag(name) for tags in tag_sets if isinstance(tags, dict) for name in tags}


def _legacy(request, env):
    instance = _new_instance(env)
    for name in sorted(request.tags):
        value = request.tags[name]
        if not isinstance(value, str):
            raise NotString()
        tag = env.dictionary.parse_tag(name)
        if tag == PIXEL_DATA:
            embed_content(instance, value)
        elif is_private(tag):
            raise AdvancedRestError("A legacy body cannot set the private tag %s" % format_tag(tag))
        else:
            instance.set_string(tag, value)
            if tag == SPECIFIC_CHARACTER_SET:
                instance.encoding = charsets.from_term(value) or env.default_encoding
    return _finish(instance)


class Plan:
    """The files of a request, built one at a time (a job builds one per step).

    The constructor checks and prepares what all files share; `file(index)` decodes the
    content of one file and encodes it. Nothing is stored here.

    Raises:
        AdvancedRestError: (constructor and `file`) any mistake in the request.
    """

    def __init__(self, request, env, parent=None):
        self.request, self.env = request, env
        self.count = len(request.content) if isinstance(request.content, tuple) and not request.multi_frame else 1
        self.identity = None  # the Identity of the file `file` built last, when known for sure
        if request.legacy:
            return
        instance = _new_instance(env)
        # The series only this request's files are in (unless a parent series or the request replaces it).
        self._new_series = instance.elements[SERIES_INSTANCE_UID].value
        # File 0's patient, study and series identifiers and Modality, once built, when known for sure: Orthanc
        # keeps that Modality for the new series it makes, which the other files with those identifiers join.
        self._first_series = None
        instance.set_encoding(request.encoding or env.default_encoding)
        if parent is not None:
            term = parent.character_set()
            if term is not None:
                instance.set_encoding(charsets.from_term(term) or env.default_encoding)
            for tag, text in parent.inherited():
                instance.set_string(tag, text)
        self.private_creator = env.default_private_creator if request.private_creator is None \
            else request.private_creator
        _dates(instance, parent.level if parent else None)
        _inject_tags(instance, request.tags, request, self.private_creator)
        if request.multi_frame and request.content is None:
            raise BadRequest("MultiFrame needs images in Content")
        if self.is_series:
            instance.set_string(0x00201002, str(self.count))  # Images in Acquisition
            instance.set_string(0x00200105, "1")  # Number of Temporal Positions
        self.base = instance

    @property
    def is_series(self):
        """Whether the request makes a series (a Content array without MultiFrame)."""
        return isinstance(self.request.content, tuple) and not self.request.multi_frame

    def file(self, index):
        """The bytes of file `index` (0 for a single instance); `identity` is then its Identity, or None."""
        request, env = self.request, self.env
        self.identity = None
        if request.legacy:
            return _legacy(request, env)
        if not self.is_series:
            instance = self.base.copy()
            if request.multi_frame:
                items = request.content if isinstance(request.content, tuple) else (Item(request.content),)
                embed_frames(instance, items, request.encapsulate, request.payloads)
            elif isinstance(request.content, str):
                embed_content(instance, request.content, request.encapsulate, request.payloads)
            _complete(instance, request, lambda: requested_tags(env.dictionary, request.tags))
            return self._encoded(instance, index)
        try:
            return self._encoded(_series_item(self.base, index, request.content[index], request,
                                              self.private_creator), index)
        except AdvancedRestError as error:
            error.details = "Content[%d]: %s" % (index, error.details or error.message)
            raise

    def _encoded(self, instance, index):
        self.identity = self._identity(instance, index)
        return writer.encode_file(instance.elements, instance.transfer_syntax)

    def _identity(self, instance, index):
        """The Identity of a completed file, None unless every part of it is known for sure: its series is the
        new one (not a parent's, whose Modality is its first instance's) and, past file 0, file 0 made it (the
        same patient, study and series)."""
        elements = instance.elements
        identifiers = tuple(_plain(elements.get(tag)) for tag in (PATIENT_ID, STUDY_INSTANCE_UID,
                                                                   SERIES_INSTANCE_UID, SOP_INSTANCE_UID))
        if index == 0:
            modality = _plain(elements.get(MODALITY))
            known = None not in identifiers and modality is not None \
                and elements[SERIES_INSTANCE_UID].value == self._new_series
            self._first_series = identifiers[:3] + (modality,) if known else None
        else:
            known = self._first_series is not None and identifiers[:3] == self._first_series[:3] \
                and identifiers[3] is not None
        if not known:
            return None
        return Identity(*identifiers, self._first_series[3], instance.transfer_syntax)


def build(request, env, parent=None):
    """The DICOM files (bytes) for `request`: one, or one per item of a series.

    `parent` is a parents.Parent already resolved. Nothing is stored here.

    Raises:
        AdvancedRestError: any mistake in the request, with the core's error code.
    """
    plan = Plan(request, env, parent)
    return [plan.file(index) for index in range(plan.count)]


def _series_item(instance, index, item, request, private_creator):
    """The completed instance of one item of a series."""
    env = instance.env
    one = instance.copy()
    one.elements[SOP_INSTANCE_UID] = Element("UI", _text(env.item_uid(index) if env.item_uid else env.new_uid()))
    if not item.has_content:
        raise NoPayload()
    if item.tags is not None:
        _inject_tags(one, item.tags, request, private_creator)
    if not isinstance(item.content, str):
        raise UseDataUriScheme()
    embed_content(one, item.content, request.encapsulate, request.payloads)
    one.set_string(0x00200013, str(index + 1))  # Instance Number
    one.set_string(0x00541330, str(index + 1))  # Image Index
    _complete(one, request, lambda: requested_tags(env.dictionary, request.tags, item.tags))
    return one
