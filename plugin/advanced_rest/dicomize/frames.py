"""`MultiFrame`: the images of a Content array -> the pixels of one multi-frame instance.

Frames are decoded one at a time into one buffer sized from the first (the frames' bytes are held
once, not once per frame and again joined); compressed frames (JPEG with Encapsulate, JPEG 2000
always) are kept as they come, one fragment each.
"""
import dataclasses

from ..errors import AdvancedRestError, BadRequest, LimitExceeded, NoPayload, UnsupportedFormat, UseDataUriScheme
from . import datauri, images, jpeg2000
from .writer import Fragments

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"

# Pixel format -> the Multi-frame Secondary Capture SOP Class (PS3.4 B.5) that holds it. 16-bit colour
# has none (Multi-frame True Color takes 8 bits per sample).
SOP_CLASSES = {
    images.GRAY8: "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture
    images.GRAY16: "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture
    images.RGB24: "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture
}
COLOUR = frozenset({images.RGB24, images.RGB48})
_DECODED = {"image/png": "png", "image/jpeg": "jpeg", "image/x-portable-arbitrarymap": "pam"}


@dataclasses.dataclass(frozen=True)
class Frames:
    """The frames of a multi-frame instance: their common format and size, and the Pixel Data value
    (bytes, or Fragments of one compressed frame each, under `transfer_syntax`)."""

    format: str
    width: int
    height: int
    count: int
    data: object
    transfer_syntax: str = None  # None: native pixels
    photometric: str = None  # None: the format's own
    bits_stored: int = None  # None: all the bits of the format's samples
    signed: bool = False
    lossy: str = None  # Lossy Image Compression Method of compressed frames, None when lossless


def _text(index, item):
    """The data URI of a MultiFrame item."""
    if not item.has_content:
        raise NoPayload()
    if item.tags is not None:
        raise BadRequest("With MultiFrame, the items of Content take no Tags of their own (one instance has one "
                         "set of Tags)")
    if not isinstance(item.content, str):
        raise UseDataUriScheme()
    return item.content


# JPEG 2000 (samples, bits allocated) -> the pixel format whose multi-frame SOP Class holds it.
_JPEG2000_FORMATS = {(1, 8): images.GRAY8, (1, 16): images.GRAY16, (3, 8): images.RGB24, (3, 16): images.RGB48}


def _jpeg2000(content, max_pixels, max_bytes):
    """(Frames of one JPEG 2000 frame, its codestream): kept as it comes, with or without Encapsulate."""
    image = jpeg2000.read(content)
    images.check_size(image.width, image.height, image.samples * image.bits_allocated // 8, max_pixels, max_bytes)
    fmt = _JPEG2000_FORMATS[(image.samples, image.bits_allocated)]
    frame = Frames(fmt, image.width, image.height, 1, None, image.transfer_syntax, image.photometric,
                   image.bits_stored, image.signed, None if image.reversible else "ISO_15444_1")
    return frame, image.codestream


def _one(text, encapsulate, max_pixels, max_bytes, payloads=None):
    """(Frames of this one frame, its fragment or pixels) for the data URI `text`."""
    parsed, mime = datauri.parse_known(text, payloads)
    if mime == "image/jp2":
        return _jpeg2000(parsed.content, max_pixels, max_bytes)
    if encapsulate:
        if mime != "image/jpeg":
            raise UnsupportedFormat("Only JPEG (and JPEG 2000, always kept) can be encapsulated, not %s" % mime)
        fmt, width, height = images.jpeg_geometry(parsed.content, max_pixels, max_bytes)
        # As for one JPEG: Orthanc 1.13 labels every colour JPEG YBR_FULL_422, whatever its subsampling.
        photometric = "YBR_FULL_422" if fmt == images.RGB24 else None
        return Frames(fmt, width, height, 1, None, JPEG_BASELINE, photometric, lossy="ISO_10918_1"), parsed.content
    if mime not in _DECODED:
        raise UnsupportedFormat("A frame of MultiFrame must be an image (PNG, JPEG, PAM, JPEG 2000), not %s" % mime)
    pixels = images.decode(parsed.content, _DECODED[mime], max_pixels, max_bytes)
    return Frames(pixels.format, pixels.width, pixels.height, 1, None), pixels.data


def _shape(frames):
    text = "%dx%d %s" % (frames.width, frames.height, frames.format)
    if frames.transfer_syntax:
        text += " compressed (%s)" % frames.transfer_syntax
    return text


def read(items, encapsulate, max_pixels, max_bytes, payloads=None):
    """The Frames of `items` (request.Item), each checked against the limits, all alike (`payloads`: the
    request's, see datauri.parse).

    Native frames together may decode to at most `max_bytes` (AdvancedRest.MaxImageBytes): they are
    what the instance holds. Compressed frames are bounded by the body's size, each by the limits.

    Raises:
        BadRequest: a frame that differs from the first in size, depth, colour or compression (named).
        LimitExceeded: a frame, or all native frames together, beyond the limits.
        UnsupportedFormat: a frame that is no image, or 16-bit colour frames (no SOP Class holds them).
        AdvancedRestError: any other mistake of one frame, its index named.
    """
    first, buffer, fragments = None, None, []
    for index, item in enumerate(items):
        try:
            frame, data = _one(_text(index, item), encapsulate, max_pixels, max_bytes, payloads)
            if first is None:
                first = frame
                if frame.format not in SOP_CLASSES:
                    raise UnsupportedFormat("MultiFrame: frames of %s have no multi-frame Secondary Capture "
                                            "SOP Class (16-bit colour)" % frame.format)
                if frame.transfer_syntax is None:
                    total = len(data) * len(items)
                    if total > max_bytes:
                        raise LimitExceeded("%d frames of %dx%d pixels decode to %d bytes, beyond "
                                            "AdvancedRest.MaxImageBytes (%d)"
                                            % (len(items), frame.width, frame.height, total, max_bytes))
                    buffer = bytearray(total)
            elif frame != first:
                raise BadRequest("MultiFrame: frame %d is %s, frame 0 is %s: every frame must have the same "
                                 "size, depth, colour and compression" % (index, _shape(frame), _shape(first)))
            if buffer is not None:
                buffer[index * len(data):(index + 1) * len(data)] = data
            else:
                fragments.append(data)
        except AdvancedRestError as error:
            error.details = "Content[%d]: %s" % (index, error.details or error.message)
            raise
    if first.transfer_syntax is None:
        return dataclasses.replace(first, count=len(items), data=buffer)
    return dataclasses.replace(first, count=len(items), data=Fragments(tuple(fragments)))
