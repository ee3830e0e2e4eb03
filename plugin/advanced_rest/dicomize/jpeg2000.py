"""JPEG 2000 kept as it comes: what a codestream (or the one a JP2 file carries) is, read from its headers.

Nothing is decoded: the main header's SIZ marker segment gives the size, components, depth and sign,
COD (and COC) the wavelet and the multiple component transform (ISO/IEC 15444-1 A.5, A.6); the tile-parts
(SOT) are walked to the final EOC, so that a truncated stream is refused rather than stored. A JP2 file
(15444-1 Annex I: signature, ftyp, jp2h with ihdr, jp2c) gives its contiguous codestream, which is what
DICOM encapsulates (PS3.5 A.4.4 leaves the JP2 header out: the data set's attributes play its part).
The wavelet chooses the transfer syntax, the components and transform the photometric interpretation
(PS3.5 8.2.4).
"""
import dataclasses
import struct

from ..errors import BadFileFormat, UnsupportedFormat

LOSSLESS = "1.2.840.10008.1.2.4.90"  # JPEG 2000 Image Compression (Lossless Only)
LOSSY = "1.2.840.10008.1.2.4.91"  # JPEG 2000 Image Compression

_SOC, _SIZ, _COD, _COC, _QCD, _SOT, _SOD, _EOC = 0xFF4F, 0xFF51, 0xFF52, 0xFF53, 0xFF5C, 0xFF90, 0xFF93, 0xFFD9
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


@dataclasses.dataclass(frozen=True)
class Jpeg2000:
    """A JPEG 2000 image's facts, as its DICOM instance states them."""

    codestream: bytes  # what goes into the Pixel Data: the codestream itself, without a JP2 file's boxes
    transfer_syntax: str
    width: int
    height: int
    samples: int  # 1 or 3
    bits_stored: int
    signed: bool
    photometric: str
    reversible: bool  # the 5/3 wavelet (and RCT): lossless; else the 9/7 (and ICT)

    @property
    def bits_allocated(self):
        """Bits of a decoded sample."""
        return 8 if self.bits_stored <= 8 else 16


def _segments(data, at):
    """(marker, payload start, end) of the main header's marker segments from `at` (after SIZ) to the first SOT.

    Raises:
        BadFileFormat: a segment past the end, or no tile-part.
    """
    while True:
        if at + 4 > len(data):
            raise BadFileFormat("JPEG 2000: the main header ends without a tile-part (a truncated codestream)")
        marker, length = struct.unpack_from(">HH", data, at)
        if marker >> 8 != 0xFF:
            raise BadFileFormat("JPEG 2000: no marker at offset %d (a damaged codestream)" % at)
        if marker == _SOT:
            return
        if length < 2 or at + 2 + length > len(data):
            raise BadFileFormat("JPEG 2000: marker %04X at offset %d runs past the end (a truncated codestream)"
                                % (marker, at))
        yield marker, at + 4, at + 2 + length
        at += 2 + length


def _tile_parts_end(data, at):
    """Walk the tile-parts from the first SOT at `at`; raise unless they end with EOC at the end of `data`."""
    while data[at:at + 2] != b"\xff\xd9":
        if at + 12 > len(data):
            raise BadFileFormat("JPEG 2000: the codestream ends inside a tile-part header (a truncated codestream)")
        marker, length, _, size = struct.unpack_from(">HHHI", data, at)
        if marker != _SOT or length != 10:
            raise BadFileFormat("JPEG 2000: no tile-part at offset %d (a damaged codestream)" % at)
        if size == 0:  # the last tile-part, up to EOC
            at = len(data) - 2
            break
        if size < 14 or at + size > len(data):
            raise BadFileFormat("JPEG 2000: the tile-part at offset %d declares %d bytes, past the end of the "
                                "codestream (a truncated codestream)" % (at, size))
        at += size
    if at != len(data) - 2 or data[-2:] != b"\xff\xd9":
        raise BadFileFormat("JPEG 2000: the codestream does not end with its EOC marker (a truncated codestream)")


def _siz(data):
    """(width, height, components as (depth, signed, dx, dy)) of the SIZ marker segment."""
    if len(data) < 4 + 38 or struct.unpack_from(">H", data, 2)[0] != _SIZ:
        raise BadFileFormat("JPEG 2000: no SIZ marker segment after SOC (a damaged codestream)")
    length, _, xsiz, ysiz, x0, y0 = struct.unpack_from(">HHIIII", data, 4)
    count = struct.unpack_from(">H", data, 4 + 36)[0]
    if count == 0 or length != 38 + 3 * count or len(data) < 4 + length:
        raise BadFileFormat("JPEG 2000: a SIZ marker segment of %d bytes for %d components (a damaged or forged "
                            "codestream)" % (length, count))
    if xsiz <= x0 or ysiz <= y0:
        raise BadFileFormat("JPEG 2000: an image of %dx%d pixels" % (max(0, xsiz - x0), max(0, ysiz - y0)))
    components = []
    for index in range(count):
        ssiz, dx, dy = data[4 + 38 + 3 * index:4 + 41 + 3 * index]
        if dx == 0 or dy == 0 or (ssiz & 0x7F) > 37:
            raise BadFileFormat("JPEG 2000: component %d has an invalid depth or sampling" % index)
        components.append(((ssiz & 0x7F) + 1, bool(ssiz & 0x80), dx, dy))
    return xsiz - x0, ysiz - y0, components


def read_codestream(data):
    """The Jpeg2000 of a raw codestream (it starts with SOC, FF4F).

    Raises:
        BadFileFormat: no codestream, or a truncated or inconsistent one.
        UnsupportedFormat: components DICOM cannot describe (2 or 4 and more, subsampled, unlike, >16 bits).
    """
    if data[:2] != b"\xff\x4f":
        raise BadFileFormat("Not a JPEG 2000 codestream or JP2 file (no SOC marker, no JP2 signature)")
    width, height, components = _siz(data)
    cod, transforms, quantization = None, [], False
    at = 4 + struct.unpack_from(">H", data, 4)[0]  # after SIZ
    for marker, start, end in _segments(data, at):
        if marker == _COD:
            if end - start < 10:
                raise BadFileFormat("JPEG 2000: a COD marker segment too short for its fields")
            cod = data[start:end]
            transforms.append(cod[9])
        elif marker == _COC:
            # Its component index takes 1 byte below 257 components, else 2; the transformation is the 6th byte after.
            offset = 1 if len(components) < 257 else 2
            if end - start < offset + 6:
                raise BadFileFormat("JPEG 2000: a COC marker segment too short for its fields")
            transforms.append(data[start + offset + 5])
        elif marker == _QCD:
            quantization = True
        at = end
    if cod is None or not quantization:
        raise BadFileFormat("JPEG 2000: the main header has no %s marker segment (a damaged codestream)"
                            % ("COD" if cod is None else "QCD"))
    if any(value not in (0, 1) for value in transforms):
        raise BadFileFormat("JPEG 2000: a wavelet transformation of code %d" % max(transforms))
    _tile_parts_end(data, at)
    depths = {(depth, signed) for depth, signed, _, _ in components}
    description = "JPEG 2000 of %d component%s" % (len(components), "s" if len(components) > 1 else "")
    if len(components) not in (1, 3):
        raise UnsupportedFormat("%s has no DICOM photometric interpretation (DICOM takes 1 or 3)" % description)
    if any((dx, dy) != (1, 1) for _, _, dx, dy in components):
        raise UnsupportedFormat("%s with subsampled components has no DICOM photometric interpretation"
                                % description)
    if len(depths) != 1:
        raise UnsupportedFormat("%s of different depths or signs cannot go into DICOM (one Bits Stored)"
                                % description)
    ((depth, signed),) = depths
    if depth > 16:
        raise UnsupportedFormat("%s of %d bits per sample: DICOM's JPEG 2000 images take up to 16" % (description,
                                                                                                     depth))
    reversible = all(value == 1 for value in transforms)
    transform = cod[4]  # multiple component transform: 1 = RCT (5/3) or ICT (9/7) on the first three
    if len(components) == 1:
        photometric = "MONOCHROME2"
    elif transform == 1:
        photometric = "YBR_RCT" if reversible else "YBR_ICT"
    else:
        photometric = "RGB"
    return Jpeg2000(data, LOSSLESS if reversible else LOSSY, width, height, len(components), depth, signed,
                    photometric, reversible)


def _boxes(data, start, end):
    """(type, payload start, end) of each JP2 box in data[start:end].

    Raises:
        BadFileFormat: a box that runs past its parent.
    """
    at = start
    while at < end:
        if end - at < 8:
            raise BadFileFormat("JP2: %d stray bytes at offset %d (a truncated or damaged file)" % (end - at, at))
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if end - at < 16:
                raise BadFileFormat("JP2: a truncated box header at offset %d" % at)
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise BadFileFormat("JP2: box '%s' at offset %d declares %d bytes, past the end (a truncated or "
                                "damaged file)" % (kind.decode("latin-1"), at, size))
        yield kind, at + header, at + size
        at += size


def read_jp2(data):
    """The Jpeg2000 of a JP2 file: its codestream, checked against the file's image header.

    Raises:
        BadFileFormat: boxes missing, past the end, or an image header that the codestream contradicts.
        UnsupportedFormat: as read_codestream, and a palette (pclr) image.
    """
    boxes = {}
    for kind, start, end in _boxes(data, 0, len(data)):
        boxes.setdefault(kind, (start, end))
    ftyp = boxes.get(b"ftyp")
    if ftyp is None or b"jp2 " not in [data[at:at + 4] for at in range(ftyp[0], ftyp[1] - 3, 4)]:
        raise BadFileFormat("JP2: no ftyp box of brand 'jp2 ' (a damaged file)")
    for kind in (b"jp2h", b"jp2c"):
        if kind not in boxes:
            raise BadFileFormat("JP2: no '%s' box (a truncated or damaged file)" % kind.decode())
    header = {kind: span for kind, *span in _boxes(data, *boxes[b"jp2h"])}
    if b"pclr" in header:
        raise UnsupportedFormat("JP2 with a palette (pclr box) cannot go into DICOM as it comes")
    ihdr = header.get(b"ihdr")
    if ihdr is None or ihdr[1] - ihdr[0] < 14:
        raise BadFileFormat("JP2: no image header box (ihdr) in its header box")
    height, width, count = struct.unpack_from(">IIH", data, ihdr[0])
    start, end = boxes[b"jp2c"]
    image = read_codestream(data[start:end])
    if (width, height, count) != (image.width, image.height, image.samples):
        raise BadFileFormat("JP2: the image header says %dx%d pixels of %d components, the codestream %dx%d of %d "
                            "(a damaged or forged file)" % (width, height, count, image.width, image.height,
                                                            image.samples))
    return image


def read(data):
    """The Jpeg2000 of a codestream or a JP2 file, told apart by their first bytes.

    Raises:
        BadFileFormat, UnsupportedFormat: as read_codestream and read_jp2.
    """
    if data.startswith(_JP2_SIGNATURE):
        return read_jp2(data)
    return read_codestream(data)
