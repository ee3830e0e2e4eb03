"""Large base64 payloads of a body, read where they lie instead of copied into JSON strings.

json.loads needs the whole body as text (one copy of it) and makes each string again (a second): for
a body of hundreds of megabytes that is two bodies more in memory before anything is decoded. Here
each long run of base64 after `;base64,` inside a JSON string is replaced by a short marker before
the JSON is parsed; a marker in a place whose data URI only the builder reads (Content, and the
Content of a series' items) stays a marker, and the builder decodes its payload from the body itself;
a marker anywhere else becomes the string it stood for again, so every other reader sees the text as
the body wrote it. Bodies that do not fit these rules are parsed whole, as before.
"""
import binascii
import dataclasses
import os

from ..errors import BadFileFormat

LARGE = 1 << 20  # bytes of a base64 run from which it is read in place
_CHUNK = 1 << 16  # bytes checked at once (a copy of this size at most, held by no one at the peak)
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_MARKER_DIGITS = 8


@dataclasses.dataclass(frozen=True)
class Payload:
    """A base64 payload in place: `data[start:end]`, every byte of the base64 alphabet."""

    data: bytes
    start: int
    end: int

    def decode(self):
        """The bytes, decoded as datauri.decode_base64 decodes them (padding optional, an incomplete last
        quantum dropped), read from `data` without copying the payload when it is well-formed.

        Raises:
            BadFileFormat: base64 that does not decode.
        """
        data, start, end = self.data, self.start, self.end
        view = memoryview(data)[start:end]  # a2b_base64 reads it in place
        padding = data.find(b"=", start, end)
        try:
            if (end - start) % 4 == 0 and (padding < 0 or padding >= end - 2 and data.count(b"=", padding, end)
                                            == end - padding):
                return binascii.a2b_base64(view)
            # Rare (padding inside, or none where it is due): the payload is copied once to be mended.
            stop = (padding if padding >= 0 else end) - start
            stop -= stop % 4 == 1
            return binascii.a2b_base64(bytes(view[:stop]) + b"=" * (-stop % 4))
        except binascii.Error as exc:
            raise BadFileFormat("Not a valid base64 string") from exc


def _is_base64(data, start, end):
    for at in range(start, end, _CHUNK):
        if data[at:min(at + _CHUNK, end)].translate(None, _BASE64_ALPHABET):
            return False
    return True


def cut(body):
    """(`body` with each base64 run of LARGE bytes or more after `;base64,` replaced by a marker,
    {marker: Payload}); (body, {}) when there is none. `body` is UTF-8 JSON (bytes)."""
    token = binascii.b2a_hex(os.urandom(12)).decode("ascii")
    pieces, cuts, copied, at = [], {}, 0, 0
    while True:
        # ",", not in the base64 alphabet, ends every header; the scheme's name is in any case.
        at = body.find(b"64,", at)
        if at < 0:
            break
        start = at + 3
        if body[at - 5:at].lower() != b";base":
            at = start
            continue
        end = body.find(b'"', start)
        if end < 0:
            break
        if end - start >= LARGE and _is_base64(body, start, end):
            marker = "%s%0*d" % (token, _MARKER_DIGITS, len(cuts))
            pieces += [body[copied:start], marker.encode("ascii")]
            cuts[marker] = Payload(body, start, end)
            copied = end
        at = end
    if not cuts:
        return body, cuts
    pieces.append(body[copied:])
    return b"".join(pieces), cuts


def restore(document, cuts, kept):
    """Put back in `document` (parsed JSON) the string of each marker not at a place `kept(path)` accepts
    (`path`: the keys and indexes from the top); the markers kept, {marker: Payload}; None when a
    marker cannot be put back (in a key, or after an escaped header): then the body must be parsed whole.
    """
    width = len(next(iter(cuts)))
    found = {}
    stack = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            entries = value.items()
            for key in value:
                if key[-width:] in cuts:
                    return None
        elif isinstance(value, list):
            entries = enumerate(value)
        else:
            continue
        for key, entry in list(entries):
            if isinstance(entry, str):
                marker = entry[-width:]
                payload = cuts.get(marker)
                if payload is None:
                    continue
                if kept(path + (key,)):
                    found[marker] = payload
                    continue
                header = entry[:-width].encode("utf-8", "surrogatepass")
                begin = payload.start - len(header)
                if begin < 1 or payload.data[begin - 1:payload.start] != b'"' + header:
                    return None
                value[key] = str(memoryview(payload.data)[begin:payload.end], "utf-8", "surrogatepass")
            elif isinstance(entry, (dict, list)):
                stack.append((entry, path + (key,)))
    return found
