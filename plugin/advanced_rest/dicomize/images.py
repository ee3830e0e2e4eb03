"""Images (PNG, JPEG, PAM, raw) -> the Image Pixel module the core writes for them."""
import dataclasses
import io
import struct

import numpy
import pyspng
from PIL import Image, ImageMode, UnidentifiedImageError

from ..errors import BadFileFormat, LimitExceeded, UnsupportedFormat

# Pillow's own guard (a process-wide warning, then an error at twice its pixel count) would
# act before ours and name a limit no option sets: every decode here checks the header's
# size against AdvancedRest.MaxImagePixels and MaxImageBytes first.
Image.MAX_IMAGE_PIXELS = None

# Formats of decoded pixels, as the core names the ones it embeds.
GRAY8, GRAY16, RGB24, RGB48 = "Grayscale8", "Grayscale16", "RGB24", "RGB48"


@dataclasses.dataclass(frozen=True)
class Pixels:
    """Decoded pixels: format, size and the interleaved little-endian bytes."""

    format: str
    width: int
    height: int
    data: object  # bytes, or a memoryview of one byte per item over the decoder's own array


def _bytes_of(array):
    """The bytes of a numpy array for the writer, without copying them when they are in one piece already
    (a 300 MB image is held once, by its decoder's array)."""
    return memoryview(numpy.ascontiguousarray(array)).cast("B")


def check_size(width, height, bytes_per_pixel, max_pixels, max_bytes):
    """Refuse, from the header alone, an image the limits do not allow to decode.

    Raises:
        BadFileFormat: an empty size.
        LimitExceeded: more pixels than `max_pixels`, or more decoded bytes than `max_bytes`.
    """
    if width <= 0 or height <= 0:
        raise BadFileFormat("Image with an empty size: %dx%d" % (width, height))
    if width * height > max_pixels:
        raise LimitExceeded("Image of %dx%d pixels exceeds AdvancedRest.MaxImagePixels (%d)"
                            % (width, height, max_pixels))
    if width * height * bytes_per_pixel > max_bytes:
        raise LimitExceeded("Image of %dx%d pixels decodes to %d bytes, beyond AdvancedRest.MaxImageBytes (%d)"
                            % (width, height, width * height * bytes_per_pixel, max_bytes))


# ---- PNG through libspng: faster than Pillow, and keeps 16-bit colour ------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Colour types libspng decodes here (RGB, gray+alpha, RGBA at 8 or 16 bits) -> channels.
# Gray goes through Pillow (pyspng returns 16-bit gray in a wrong shape), and so do
# palettes and lower bit depths.
_SPNG_COLOR_TYPES = {2: 3, 4: 2, 6: 4}
# Every colour type -> channels decoded; a palette is expanded to RGB.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def _png_header(content):
    """(width, height, bit depth, colour type) of a PNG, or None."""
    if len(content) < 33 or not content.startswith(_PNG_SIGNATURE) or content[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBB", content[16:26])


def _decode_with_spng(content, width, height, depth, color):
    try:
        array = pyspng.load(content)
    except Exception as exc:  # libspng's errors carry no common type
        raise BadFileFormat("Cannot decode the PNG image: %s" % exc) from exc
    if array.shape[:2] != (height, width):
        raise BadFileFormat("Inconsistent PNG image")
    channels = _SPNG_COLOR_TYPES[color]
    if array.ndim != 3 or array.shape[2] < channels:
        raise BadFileFormat("Inconsistent PNG image")
    if channels == 2:
        kept, fmt = array[:, :, 0], (GRAY16 if depth == 16 else GRAY8)  # alpha dropped
    else:
        kept, fmt = array[:, :, :3], (RGB48 if depth == 16 else RGB24)  # alpha dropped
    if depth == 16:
        kept = kept.astype("<u2", copy=False)
    return Pixels(fmt, width, height, _bytes_of(kept))


# ---- PAM (the core's image/x-portable-arbitrarymap) ---------------------------

def _decode_pam(content, max_pixels, max_bytes):
    end = content.find(b"ENDHDR\n")
    if not content.startswith(b"P7\n") or end < 0:
        raise BadFileFormat("Not a PAM image")
    fields = {}
    for line in content[3:end].decode("ascii", "replace").splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and not parts[0].startswith("#"):
            fields[parts[0]] = parts[1].strip()
    try:
        width, height = int(fields["WIDTH"]), int(fields["HEIGHT"])
        depth, maxval = int(fields["DEPTH"]), int(fields["MAXVAL"])
    except (KeyError, ValueError) as exc:
        raise BadFileFormat("Bad PAM header") from exc
    check_size(width, height, max(depth, 1) * (2 if maxval > 255 else 1), max_pixels, max_bytes)
    dtype = ">u2" if maxval > 255 else "u1"
    count = width * height * depth
    data = numpy.frombuffer(content, dtype=dtype, count=count, offset=end + 7) \
        if len(content) - end - 7 >= count * numpy.dtype(dtype).itemsize else None
    if data is None:
        raise BadFileFormat("Truncated PAM image")
    data = data.reshape(height, width, depth)
    if depth in (1, 2):
        fmt, data = (GRAY16 if maxval > 255 else GRAY8), data[:, :, 0]
    elif depth in (3, 4):
        fmt, data = (RGB48 if maxval > 255 else RGB24), data[:, :, :3]
    else:
        raise UnsupportedFormat("PAM images of depth %d are not supported" % depth)
    return Pixels(fmt, width, height, _bytes_of(data.astype("<u2" if maxval > 255 else "u1", copy=False)))


# ---- everything Pillow reads ---------------------------------------------------

# Pillow modes -> (our format, mode to convert to first); converting drops alpha
# channels and expands palettes and low bit depths. CMYK is refused, as the core
# does: Pillow's conversion to RGB ignores the inks' profile, so it is not faithful.
_MODES = {
    "L": (GRAY8, None),
    "1": (GRAY8, "L"),
    "LA": (GRAY8, "L"),
    "La": (GRAY8, "L"),
    "P": (RGB24, "RGB"),
    "PA": (RGB24, "RGB"),
    "RGB": (RGB24, None),
    "RGBA": (RGB24, "RGB"),
    "RGBa": (RGB24, "RGB"),
    "RGBX": (RGB24, "RGB"),
    "YCbCr": (RGB24, "RGB"),
    "I;16": (GRAY16, None),
    "I;16L": (GRAY16, None),
    "I;16B": (GRAY16, "I;16"),
    "I": (GRAY16, "I"),
}


def _bytes_per_pixel(mode):
    """Bytes per pixel of an image of this Pillow mode, as its decoder allocates them."""
    described = ImageMode.getmode(mode)
    return len(described.bands) * int(described.typestr[-1])


def _open(content, pillow_format):
    """The image in `content` if it is of `pillow_format`: its header is read, not its pixels.

    Raises:
        BadFileFormat: content that is not such an image.
    """
    try:
        return Image.open(io.BytesIO(content), formats=[pillow_format])
    except UnidentifiedImageError:
        raise BadFileFormat("Not a %s image" % pillow_format) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise BadFileFormat("Cannot read the header of the %s image: %s" % (pillow_format, exc)) from exc


def _decode_with_pillow(content, pillow_format, max_pixels, max_bytes, bytes_per_pixel=1):
    """Pixels of an image Pillow decodes; `bytes_per_pixel`: at least that many are allocated."""
    image = _open(content, pillow_format)
    bytes_per_pixel = max(bytes_per_pixel, _bytes_per_pixel(image.mode))
    check_size(image.width, image.height, bytes_per_pixel, max_pixels, max_bytes)
    if image.mode not in _MODES:
        raise UnsupportedFormat("Unsupported pixel format of the image: %s" % image.mode)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise BadFileFormat("Cannot decode the image: %s" % exc) from exc
    fmt, convert = _MODES[image.mode]
    if image.mode == "I":
        array = numpy.asarray(image)
        if array.min() < 0 or array.max() > 0xFFFF:
            raise UnsupportedFormat("Image with 32-bit samples")
        data = array.astype("<u2").tobytes()
    else:
        if convert:
            image = image.convert(convert)
        data = image.tobytes()
    return Pixels(fmt, image.width, image.height, data)


def jpeg_geometry(content, max_pixels, max_bytes):
    """(format, width, height) of a JPEG read from its header only, for encapsulation.

    Raises:
        BadFileFormat: not a JPEG.
        LimitExceeded: more than `max_pixels` pixels, or than `max_bytes` once decoded.
        UnsupportedFormat: neither grayscale nor colour (e.g. CMYK).
    """
    image = _open(content, "JPEG")
    check_size(image.width, image.height, _bytes_per_pixel(image.mode), max_pixels, max_bytes)
    formats = {"L": GRAY8, "RGB": RGB24, "YCbCr": RGB24}
    if image.mode not in formats:
        raise UnsupportedFormat("Cannot encapsulate a JPEG image of mode %s" % image.mode)
    return formats[image.mode], image.width, image.height


def decode(content, kind, max_pixels, max_bytes):
    """Pixels of an image given as `kind` ("png", "jpeg" or "pam"), decoded only as that format.

    The size is checked from the header, before anything is decoded.

    Raises:
        BadFileFormat: content that is not of `kind`, or does not decode.
        LimitExceeded: more than `max_pixels` pixels, or than `max_bytes` once decoded.
        UnsupportedFormat: a pixel format with no faithful conversion.
    """
    if kind == "pam":
        return _decode_pam(content, max_pixels, max_bytes)
    if kind == "jpeg":
        return _decode_with_pillow(content, "JPEG", max_pixels, max_bytes)
    header = _png_header(content)
    if header is None:
        # What the data URI calls PNG must be one (the core reads it with libpng only).
        raise BadFileFormat("Not a PNG image")
    width, height, depth, color = header
    bytes_per_pixel = _PNG_CHANNELS.get(color, 1) * (2 if depth == 16 else 1)
    check_size(width, height, bytes_per_pixel, max_pixels, max_bytes)
    if depth in (8, 16) and color in _SPNG_COLOR_TYPES:
        return _decode_with_spng(content, width, height, depth, color)
    return _decode_with_pillow(content, "PNG", max_pixels, max_bytes, bytes_per_pixel)
