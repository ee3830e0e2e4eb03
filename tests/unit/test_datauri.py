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


def _reference(payload):
    """The core's rules written plainly: stop at the first '=', drop an incomplete last quantum."""
    import binascii
    payload = payload.split(b"=", 1)[0]
    payload = payload[: len(payload) - (len(payload) % 4 == 1)]
    return binascii.a2b_base64(payload + b"=" * (-len(payload) % 4))


def test_the_fast_path_decodes_as_the_core_rules_say():
    import base64
    import random
    generator = random.Random(7)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
    samples = [base64.b64encode(bytes(generator.randrange(256) for _ in range(n))) for n in range(40)]
    samples += [bytes(generator.choice(alphabet) for _ in range(generator.randrange(1, 30))) for _ in range(3000)]
    for payload in samples:
        assert datauri.decode_base64(payload) == _reference(payload), payload
