"""Small images, and images whose header claims a size their data does not have (forged), for the
unit and integration tests of create-dicom's image limits."""
import io
import struct
import zlib

from PIL import Image


def image_bytes(fmt, mode="RGB", size=(8, 6)):
    """A real image of `size` in Pillow format `fmt` ("PNG", "JPEG", "BMP"...)."""
    out = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 40)[:len(mode)] if len(mode) > 1 else 7).save(out, fmt)
    return out.getvalue()


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, depth=8, color=6, rows=None):
    """A PNG with this IHDR; without `rows`, about 1 KB of image data that cannot fill it."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    if rows is None:
        idat = zlib.compress(bytes(range(256)) * 4)[:1000]
    else:
        row = b"\x00" + bytes(width * channels * depth // 8)
        idat = zlib.compress(row * rows)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def jpeg(width, height, mode="RGB"):
    """A small JPEG whose frame header (SOF0) claims `width` x `height`."""
    data = bytearray(image_bytes("JPEG", mode, (16, 16)))
    at = data.find(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)
