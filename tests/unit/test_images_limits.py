"""Images are sized from their header before any decoding, and decoded only as their MIME type says."""
import warnings

import pytest
from PIL import Image

from advanced_rest.dicomize import images
from forged_images import image_bytes, jpeg, png
from advanced_rest.errors import BadFileFormat, LimitExceeded, UnsupportedFormat

MAX_PIXELS = 178956970  # AdvancedRest.MaxImagePixels' default
MAX_BYTES = 256 * 1024 * 1024  # AdvancedRest.MaxImageBytes' default


def pam(width, height, depth=4, maxval=65535):
    header = "P7\nWIDTH %d\nHEIGHT %d\nDEPTH %d\nMAXVAL %d\nENDHDR\n" % (width, height, depth, maxval)
    return header.encode() + bytes(16)


def test_pillow_guard_is_off_ours_run_first():
    assert Image.MAX_IMAGE_PIXELS is None


def test_forged_png_rgba16_is_refused_from_its_header(monkeypatch):
    monkeypatch.setattr(images.pyspng, "load", lambda *a: pytest.fail("decoded before the size was checked"))
    content = png(13000, 13000, depth=16, color=6)
    assert len(content) < 1100
    with pytest.raises(LimitExceeded) as refused:
        images.decode(content, "png", MAX_PIXELS, MAX_BYTES)
    assert "AdvancedRest.MaxImageBytes (268435456)" in refused.value.details
    assert "1352000000 bytes" in refused.value.details  # 13000 x 13000 x 4 channels x 2 bytes
    assert (refused.value.http_status, refused.value.code) == (400, 3)


@pytest.mark.parametrize("depth, color, per_pixel", [
    (16, 6, 8), (8, 6, 4), (16, 2, 6), (8, 2, 3), (16, 4, 4), (8, 4, 2), (16, 0, 2), (8, 0, 1), (4, 0, 1),
    (8, 3, 3),  # a palette is expanded to RGB
])
def test_png_bytes_are_width_height_and_bytes_per_pixel(depth, color, per_pixel):
    content = png(5, 3, depth, color)
    with pytest.raises(LimitExceeded, match="MaxImageBytes"):
        images.decode(content, "png", MAX_PIXELS, 5 * 3 * per_pixel - 1)
    with pytest.raises(BadFileFormat):  # within the limit: decoded, and found truncated
        images.decode(content, "png", MAX_PIXELS, 5 * 3 * per_pixel)


def test_a_png_exactly_at_the_limit_decodes():
    pixels = images.decode(png(5, 3, 16, 6, rows=3), "png", MAX_PIXELS, 5 * 3 * 8)
    assert (pixels.format, pixels.width, pixels.height) == (images.RGB48, 5, 3)


def test_jpeg_20000x8000_names_the_bytes_limit_by_default():
    with pytest.raises(LimitExceeded) as refused:
        images.decode(jpeg(20000, 8000), "jpeg", MAX_PIXELS, MAX_BYTES)
    assert "AdvancedRest.MaxImageBytes" in refused.value.details and "480000000 bytes" in refused.value.details


def test_jpeg_beyond_max_image_pixels_names_that_option_not_pillows_guard():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not come first
        with pytest.raises(LimitExceeded) as refused:
            images.decode(jpeg(20000, 8000), "jpeg", 100_000_000, MAX_BYTES)
    assert "AdvancedRest.MaxImagePixels (100000000)" in refused.value.details
    assert "Decompression" not in refused.value.details


def test_pixels_are_checked_before_bytes():
    with pytest.raises(LimitExceeded, match="MaxImagePixels"):
        images.decode(png(1000, 1000, 16, 6), "png", 999_999, 10)


def test_gray_jpeg_counts_one_byte_per_pixel():
    with pytest.raises(LimitExceeded, match="MaxImageBytes"):
        images.decode(jpeg(100, 100, "L"), "jpeg", MAX_PIXELS, 9_999)
    pixels = images.decode(jpeg(100, 100, "L"), "jpeg", MAX_PIXELS, 10_000)  # libjpeg fills what is missing
    assert (pixels.format, pixels.width, pixels.height) == (images.GRAY8, 100, 100)


def test_jpeg_geometry_checks_both_limits():
    assert images.jpeg_geometry(jpeg(16, 16), MAX_PIXELS, MAX_BYTES) == (images.RGB24, 16, 16)
    with pytest.raises(LimitExceeded, match="MaxImageBytes"):
        images.jpeg_geometry(jpeg(20000, 8000), MAX_PIXELS, MAX_BYTES)
    with pytest.raises(LimitExceeded, match="MaxImagePixels"):
        images.jpeg_geometry(jpeg(20000, 8000), 1000, MAX_BYTES)
    with pytest.raises(BadFileFormat, match="Not a JPEG"):
        images.jpeg_geometry(image_bytes("PNG"), MAX_PIXELS, MAX_BYTES)


def test_pam_bytes_limit():
    with pytest.raises(LimitExceeded, match="MaxImageBytes"):
        images.decode(pam(1000, 1000), "pam", MAX_PIXELS, 8_000_000 - 1)
    with pytest.raises(LimitExceeded, match="MaxImagePixels"):
        images.decode(pam(1000, 1000), "pam", 999_999, MAX_BYTES)


@pytest.mark.parametrize("fmt, mode", [("BMP", "RGB"), ("GIF", "P"), ("TIFF", "RGB"), ("PPM", "RGB"),
                                       ("JPEG", "RGB"), ("JPEG", "CMYK")])
def test_png_decodes_only_png(fmt, mode):
    with pytest.raises(BadFileFormat, match="Not a PNG"):
        images.decode(image_bytes(fmt, mode), "png", MAX_PIXELS, MAX_BYTES)


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGB"), ("PNG", "L"), ("BMP", "RGB"), ("GIF", "P"), ("TIFF", "RGB")])
def test_jpeg_decodes_only_jpeg(fmt, mode):
    with pytest.raises(BadFileFormat, match="Not a JPEG"):
        images.decode(image_bytes(fmt, mode), "jpeg", MAX_PIXELS, MAX_BYTES)


def test_cmyk_labelled_jpeg_stays_unsupported_like_the_core():
    with pytest.raises(UnsupportedFormat):
        images.decode(image_bytes("JPEG", "CMYK"), "jpeg", MAX_PIXELS, MAX_BYTES)


@pytest.mark.parametrize("fmt, mode, expected", [("PNG", "L", images.GRAY8), ("PNG", "P", images.RGB24),
                                                 ("JPEG", "RGB", images.RGB24), ("JPEG", "L", images.GRAY8)])
def test_genuine_images_still_decode(fmt, mode, expected):
    pixels = images.decode(image_bytes(fmt, mode), fmt.lower(), MAX_PIXELS, MAX_BYTES)
    assert (pixels.format, pixels.width, pixels.height) == (expected, 8, 6)
