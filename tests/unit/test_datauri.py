import base64

import pytest

from advanced_rest.dicomize import datauri
from advanced_rest.errors import BadFileFormat


@pytest.mark.parametrize("text, mime, content", [
    ("data:image/png;base64,AAEC", "image/png", b"\x00\x01\x02"),
    ("DATA:IMAGE/PNG;BASE64,AAEC", "image/png", b"\x00\x01\x02"),
    ("data:application/pdf;base64,", "application/pdf", b""),
    ("data:image/png;base64,AAE=", "image/png", b"\x00\x01"),
    ("data:image/png;base64,AAE", "image/png", b"\x00\x01"),  # padding is optional
], ids=["plain", "upper-case", "empty", "padded", "unpadded"])
def test_parse_accepts_what_the_core_accepts(text, mime, content):
    assert datauri.parse(text) == datauri.DataUri(mime, content)


@pytest.mark.parametrize("text", [
    "image/png;base64,AAEC",
    "data:image/png,AAEC",
    "data:image/png;charset=x;base64,AAEC",
    "data:;base64,AAEC",
    " data:image/png;base64,AAEC",
    "data:image/png;base64,AA EC",
], ids=["no-scheme", "no-base64", "extra-parameter", "no-mime", "leading-space", "inner-space"])
def test_parse_refuses_other_shapes(text):
    assert datauri.parse(text) is None


def test_decode_base64_refuses_foreign_characters():
    with pytest.raises(BadFileFormat):
        datauri.decode_base64("AA*C")


def test_decode_base64_round_trips_binary():
    blob = bytes(range(256)) * 3
    assert datauri.decode_base64(base64.b64encode(blob).decode()) == blob
