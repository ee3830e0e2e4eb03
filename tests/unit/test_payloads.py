"""Large base64 payloads read in place (dicomize/payloads.py): the request and its files are the same as when
the body is parsed whole, whatever the body looks like."""
import base64
import io
import json
import random

import numpy
import pydicom
import pytest
from PIL import Image

from advanced_rest.dicomize import builder, datauri, payloads, request
from advanced_rest.errors import AdvancedRestError

from test_builder import environment

SIZE = payloads.LARGE  # base64 characters of a payload that is read in place


def _blob(n, seed=1):
    return random.Random(seed).randbytes(n)


def _uri(mime, data):
    return "data:%s;base64,%s" % (mime, base64.b64encode(data).decode("ascii"))


OCTET = _uri("application/octet-stream", _blob(SIZE))
PDF = _uri("application/pdf", b"%PDF-1.4\n" + _blob(SIZE))


def _png():
    pixels = numpy.random.RandomState(3).randint(0, 256, (700, 700, 3), dtype=numpy.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG", compress_level=1)
    return _uri("image/png", out.getvalue())


PNG = _png()


def _whole(monkeypatch, body):
    """What parse and build give for `body` when nothing is read in place (as before)."""
    with monkeypatch.context() as patch:
        patch.setattr(payloads, "LARGE", 1 << 62)
        return _outcome(body)


def _outcome(body):
    """(the parsed request's fields but payloads, the files built) or the error raised."""
    try:
        parsed = request.parse(body)
        counter = iter(range(1, 10 ** 6))
        env = environment()
        env = builder.Environment(**dict(env.__dict__, new_uid=lambda: "2.25.%d" % next(counter)))
        files = builder.build(parsed, env)
    except AdvancedRestError as error:
        return type(error), error.message, error.details
    kept = {name: value for name, value in parsed.__dict__.items() if name not in ("payloads", "content", "tags")}
    return kept, [pydicom.dcmread(io.BytesIO(data)).to_json_dict() for data in files]


BODIES = {
    "octet": {"Tags": {"PatientName": "A"}, "Content": OCTET},
    "pdf": {"Tags": {}, "Content": PDF},
    "png": {"Tags": {"Modality": "OT"}, "Content": PNG},
    "upper-case-scheme": {"Tags": {}, "Content": OCTET.replace(";base64,", ";BASE64,")},
    "series": {"Tags": {}, "Content": [OCTET, {"Content": PDF, "Tags": {"SeriesDescription": "x"}}]},
    "multi-frame": {"Tags": {}, "Content": [PNG, PNG], "MultiFrame": True},
    "legacy-pixel-data": {"PixelData": OCTET, "PatientName": "B"},
    "binary-tag": {"Tags": {"EncapsulatedDocument": PDF}},
    "ob-tag": {"Tags": {"0009,1001": OCTET}, "PrivateCreator": "X"},
    "padding-inside": {"Tags": {}, "Content": OCTET[:-8] + "AA==AAAA"},
    "unpadded": {"Tags": {}, "Content": OCTET.rstrip("=")[:-1]},
    "unknown-mime": {"Tags": {}, "Content": OCTET.replace("application/octet-stream", "image/unknown")},
    "two-headers": {"Tags": {}, "Content": "data:a;base64,xx;base64," + OCTET.split(",", 1)[1]},
    "not-png": {"Tags": {}, "Content": OCTET.replace("application/octet-stream", "image/png")},
    "tag-error-first": {"Tags": {"Rows": "x"}, "Content": "data:image/png;base64,*" + OCTET.split(",", 1)[1]},
    "asynchronous": {"Tags": {}, "Content": OCTET, "Asynchronous": True},
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_body_read_in_place_gives_what_the_whole_body_gives(monkeypatch, name):
    body = json.dumps(BODIES[name]).encode()
    assert _outcome(body) == _whole(monkeypatch, body)


@pytest.mark.parametrize("text", [
    '{"Tags": {}, "Content": "data:application\\/octet-stream;base64,%s"}',  # an escape in the header
    '{"Tags": {}, "data:application/octet-stream;base64,%s": 1}',  # a key
    '{"Tags": {}, "Content": "data:application/octet-stream;base64,%s\\n"}',  # an escape after the payload
    '\ufeff{"Tags": {}, "Content": "data:application/octet-stream;base64,%s"}',  # a byte order mark
    '{"Tags": {}, "Content": "data:application/octet-stream;base64,%s"',  # not JSON
    '{"Tags": {}, "Content": "data:application/octet-stream;base64,%s", "Content": "data:image/png;base64,"}',
], ids=["escaped-header", "key", "escape-after", "bom", "not-json", "duplicate-key"])
def test_bodies_that_the_rules_do_not_fit_are_parsed_as_before(monkeypatch, text):
    body = (text % OCTET.split(",", 1)[1]).encode("utf-8")
    assert _outcome(body) == _whole(monkeypatch, body)


def test_the_payload_is_left_in_the_body():
    body = json.dumps(BODIES["octet"]).encode()
    parsed = request.parse(body)
    assert len(parsed.content) < 100 and parsed.content.startswith("data:application/octet-stream;base64,")
    (payload,) = parsed.payloads.values()
    assert payload.data is body
    assert datauri.parse(parsed.content, parsed.payloads).content == base64.b64decode(OCTET.split(",", 1)[1])


def test_small_bodies_are_parsed_whole():
    parsed = request.parse(json.dumps({"Tags": {}, "Content": _uri("application/octet-stream", b"abc")}).encode())
    assert parsed.payloads is None and parsed.content.endswith("YWJj")


def test_a_decoded_payload_follows_the_cores_rules():
    generator = random.Random(5)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
    for _ in range(500):
        run = bytes(generator.choice(alphabet) for _ in range(generator.randrange(0, 24)))
        data = b'"x;base64,' + run + b'"'
        assert payloads.Payload(data, 10, 10 + len(run)).decode() == datauri.decode_base64(run), run
