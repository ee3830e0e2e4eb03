import pytest

from advanced_rest.dicomize import multipart
from advanced_rest.errors import BadRequest

TYPE = 'multipart/related; type="application/json"; boundary=XyZ'


def _body(*parts, boundary=b"XyZ", preamble=b""):
    out = preamble
    for headers, data in parts:
        out += b"--" + boundary + b"\r\n" + b"".join(b"%s: %s\r\n" % item for item in headers) + b"\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


REQUEST = (((b"Content-Type", b"application/json"),), b'{"Tags": {}, "Content": "cid:video"}')
VIDEO = (((b"Content-Type", b"video/mp4"), (b"Content-ID", b"<video>")), b"\x00\x01\r\n--Xy\r\nbinary\r\n")


def test_the_request_and_its_files_are_read_where_they_lie():
    body = _body(REQUEST, VIDEO)
    request, files = multipart.split(body, TYPE, 10)
    assert request == b'{"Tags": {}, "Content": "cid:video"}'
    assert list(files) == ["cid:video"]
    part = files["cid:video"]
    assert (part.mime, part.decode()) == ("video/mp4", VIDEO[1])
    assert part.data is body  # no copy of the body


def test_the_start_parameter_names_the_request_and_a_preamble_is_skipped():
    first = (((b"Content-Type", b"image/png; name=x"), (b"Content-ID", b"<img>")), b"PNG")
    request = (((b"Content-Type", b"application/json"), (b"Content-ID", b"<root>")), b"{}")
    body = _body(first, request, preamble=b"ignored text\r\n")
    got, files = multipart.split(body, TYPE + '; start="<root>"', 10)
    assert got == b"{}" and files["cid:img"].mime == "image/png"


@pytest.mark.parametrize("content_type, body, message", [
    ('multipart/related; type="application/json"', _body(REQUEST), "boundary"),
    ('multipart/related; type="image/png"; boundary=XyZ', _body(REQUEST), "type parameter"),
    (TYPE, b"no boundary here", "no part starts"),
    (TYPE, _body(REQUEST)[:-9], "ends inside a part"),
    (TYPE, _body(REQUEST, (((b"Content-Type", b"video/mp4"),), b"x")), "Content-ID"),
    (TYPE, _body(REQUEST, VIDEO, VIDEO), "used twice"),
    (TYPE, _body((((b"Content-Type", b"text/plain"),), b"{}")), "must be application/json"),
    (TYPE + "; start=nope", _body(REQUEST), "start parameter"),
    (TYPE, _body(REQUEST, *[(((b"Content-Type", b"image/png"), (b"Content-ID", b"%d" % i)), b"x")
                            for i in range(4)]), "more than 3 files"),
    (TYPE, b"--XyZ\r\nbroken header\r\n\r\n{}\r\n--XyZ--", "Name: value"),
])
def test_a_malformed_body_is_refused_with_the_reason(content_type, body, message):
    with pytest.raises(BadRequest, match=message):
        multipart.split(body, content_type, 3)


def test_content_types_are_recognised_with_their_parameters():
    assert multipart.is_multipart('Multipart/Related; boundary="a b"')
    assert not multipart.is_multipart("application/json")
    assert multipart.media_type('multipart/related; boundary="a\\"b"; type=application/json') == (
        "multipart/related", {"boundary": 'a"b', "type": "application/json"})
