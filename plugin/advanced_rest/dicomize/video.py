"""Video kept as it comes: what an MP4 (H.264, HEVC) or MPEG-2 stream is, read from its own headers.

Nothing is decoded: the MP4 boxes (ISO/IEC 14496-12: ftyp, moov/mvhd, trak/mdia/mdhd, hdlr, stbl/stsd
with avcC or hvcC, stsz, stts, stco/co64) and the parameter sets they carry, or the MPEG-2 sequence
header and extension (ISO/IEC 13818-2), in a program stream's packets or an elementary stream, give
the size, frames, pace, profile and level. The profile and level choose the transfer syntax
(PS3.5 8.2.5-8.2.9, PS3.6 Annex A); one with none is refused rather than mislabelled.
"""
import dataclasses
import struct

import numpy

from ..errors import BadFileFormat, UnsupportedFormat


@dataclasses.dataclass(frozen=True)
class Video:
    """A video stream's facts, as its DICOM instance states them."""

    transfer_syntax: str
    width: int
    height: int
    frames: int
    frame_time: float  # milliseconds
    bits_stored: int  # 8, or 10 (HEVC Main 10)
    compression: str  # Lossy Image Compression Method (PS3.3 C.7.6.1.1.5.1)
    description: str  # codec, profile and level, for messages

    @property
    def bits_allocated(self):
        """Bits of a decoded sample."""
        return 8 if self.bits_stored <= 8 else 16


MPEG2_MAIN_LEVEL = "1.2.840.10008.1.2.4.100"
MPEG2_HIGH_LEVEL = "1.2.840.10008.1.2.4.101"
H264_HIGH_41 = "1.2.840.10008.1.2.4.102"
H264_HIGH_42_2D = "1.2.840.10008.1.2.4.104"
HEVC_MAIN_51 = "1.2.840.10008.1.2.4.107"
HEVC_MAIN10_51 = "1.2.840.10008.1.2.4.108"

_H264_PROFILES = {66: "Baseline", 77: "Main", 88: "Extended", 100: "High", 110: "High 10", 122: "High 4:2:2",
                  244: "High 4:4:4 Predictive", 44: "CAVLC 4:4:4 Intra", 83: "Scalable Baseline",
                  86: "Scalable High", 118: "Multiview High", 128: "Stereo High"}
# Profiles whose sequence parameter set carries chroma format and bit depths (H.264 7.3.2.1.1).
_H264_HIGH_FAMILY = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_HEVC_PROFILES = {1: "Main", 2: "Main 10", 3: "Main Still Picture", 4: "Range Extensions"}
_MPEG2_PROFILES = {1: "High", 2: "Spatially Scalable", 3: "SNR Scalable", 4: "Main", 5: "Simple"}
_MPEG2_LEVELS = {4: "High", 6: "High 1440", 8: "Main", 10: "Low"}
_MPEG2_FRAME_RATES = {1: 24000 / 1001, 2: 24.0, 3: 25.0, 4: 30000 / 1001, 5: 30.0, 6: 50.0, 7: 60000 / 1001, 8: 60.0}


def _no_syntax(description, takes):
    return UnsupportedFormat("%s has no DICOM transfer syntax (DICOM takes %s)" % (description, takes))


def _u32(data, at):
    return struct.unpack_from(">I", data, at)[0]


# ---- MP4 -----------------------------------------------------------------------------

def _boxes(data, start, end):
    """(type, payload start, end) of each box in data[start:end].

    Raises:
        BadFileFormat: a box that runs past its parent (a truncated or forged file).
    """
    at = start
    while at < end:
        if end - at < 8:
            raise BadFileFormat("MP4: %d stray bytes at offset %d (a truncated or damaged file)" % (end - at, at))
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if end - at < 16:
                raise BadFileFormat("MP4: truncated box header at offset %d" % at)
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = end - at  # to the end of the file
        if size < header or at + size > end:
            raise BadFileFormat("MP4: box '%s' at offset %d declares %d bytes, past the end of %s (a truncated or "
                                "damaged file)" % (kind.decode("latin-1"), at, size,
                                                   "the file" if end == len(data) else "its parent box"))
        yield kind, at + header, at + size
        at += size


def _child(data, start, end, kind):
    """(payload start, end) of the first `kind` box in data[start:end], or None."""
    for found, payload, stop in _boxes(data, start, end):
        if found == kind:
            return payload, stop
    return None


def _need(data, span, path):
    """The span of the box at `path` (box types) under `span`.

    Raises:
        BadFileFormat: a box missing.
    """
    for kind in path:
        found = _child(data, span[0], span[1], kind)
        if found is None:
            raise BadFileFormat("MP4: no '%s' box (a truncated or damaged file)" % kind.decode())
        span = found
    return span


def _full_box(data, span, size):
    """Check that a full box (version, flags) holds `size` bytes after them; its version."""
    if span[1] - span[0] < 4 + size:
        raise BadFileFormat("MP4: a box too short for its fields")
    return data[span[0]]


class _Bits:
    """An RBSP bit reader (emulation prevention bytes removed) with Exp-Golomb codes."""

    def __init__(self, nal):
        self.data = nal.replace(b"\x00\x00\x03", b"\x00\x00")
        self.at = 0

    def bit(self):
        if self.at >= len(self.data) * 8:
            raise BadFileFormat("A parameter set ends too early")
        value = self.data[self.at >> 3] >> (7 - (self.at & 7)) & 1
        self.at += 1
        return value

    def bits(self, count):
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self):
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise BadFileFormat("A parameter set holds a malformed Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)


def _h264_level(profile, constraints, level):
    if level == 9 or (level == 11 and constraints & 0x10 and profile in (66, 77, 88)):
        return "1b", 10
    return "%d.%d" % (level // 10, level % 10), level


def _avc(data, span):
    """(transfer syntax, bits, description) of an avcC box."""
    config = data[span[0]:span[1]]
    if len(config) < 7 or config[0] != 1 or config[5] & 0x1F == 0:
        raise BadFileFormat("MP4: a malformed avcC box (no sequence parameter set)")
    profile, constraints, level_idc = config[1], config[2], config[3]
    length = struct.unpack_from(">H", config, 6)[0]
    sps = config[8:8 + length]
    if len(sps) != length or length < 4 or sps[0] & 0x1F != 7 or tuple(sps[1:4]) != (profile, constraints, level_idc):
        raise BadFileFormat("MP4: the avcC box and its sequence parameter set disagree (a damaged or forged file)")
    level, level_value = _h264_level(profile, constraints, level_idc)
    name = _H264_PROFILES.get(profile, "profile %d" % profile)
    if profile == 66 and constraints & 0x40:
        name = "Constrained Baseline"
    description = "H.264 %s profile, level %s" % (name, level)
    takes = "H.264 High, Main or Constrained Baseline profile up to level 4.2, 8-bit 4:2:0"
    chroma, depth = 1, 8
    if profile in _H264_HIGH_FAMILY:
        bits = _Bits(sps[4:])
        bits.ue()  # seq_parameter_set_id
        chroma = bits.ue()
        if chroma == 3:
            bits.bit()  # separate_colour_plane_flag
        depth = 8 + bits.ue()
    if profile not in (77, 100) and name != "Constrained Baseline" or chroma != 1 or depth != 8:
        if chroma != 1 or depth != 8:
            description += " (%d-bit, chroma format %d)" % (depth, chroma)
        raise _no_syntax(description, takes)
    # A High profile decoder decodes Main and Constrained Baseline streams (H.264 A.2.4).
    if level_value <= 41:
        return H264_HIGH_41, 8, description
    if level_value == 42:
        return H264_HIGH_42_2D, 8, description
    raise _no_syntax(description, takes)


def _hevc(data, span):
    """(transfer syntax, bits, description) of an hvcC box."""
    config = data[span[0]:span[1]]
    if len(config) < 23 or config[0] != 1:
        raise BadFileFormat("MP4: a malformed hvcC box")
    space, tier, profile = config[1] >> 6, config[1] >> 5 & 1, config[1] & 0x1F
    level = config[12]
    chroma, depth = config[16] & 3, 8 + (config[17] & 7)
    description = "HEVC %s profile, %s tier, level %g" % (_HEVC_PROFILES.get(profile, "profile %d" % profile),
                                                         "High" if tier else "Main", level / 30)
    takes = "HEVC Main or Main 10 profile, Main tier, up to level 5.1, 4:2:0"
    if space != 0 or tier or level > 153 or chroma != 1 or (profile, depth) not in ((1, 8), (2, 8), (2, 10)):
        if chroma != 1 or depth > 10:
            description += " (%d-bit, chroma format %d)" % (depth, chroma)
        raise _no_syntax(description, takes)
    return (HEVC_MAIN_51 if profile == 1 else HEVC_MAIN10_51), depth, description


_CODECS = {b"avc1": (_avc, b"avcC", "ISO_14496_10"), b"avc3": (_avc, b"avcC", "ISO_14496_10"),
           b"hvc1": (_hevc, b"hvcC", "ISO_23008_2"), b"hev1": (_hevc, b"hvcC", "ISO_23008_2")}
_VISUAL_SAMPLE_ENTRY = 78  # bytes of a VisualSampleEntry's fields before its boxes


def _video_track(data, moov):
    """The trak span of the one video track."""
    tracks = []
    for kind, start, end in _boxes(data, *moov):
        if kind == b"trak":
            handler = _need(data, (start, end), (b"mdia", b"hdlr"))
            _full_box(data, handler, 8)
            if data[handler[0] + 8:handler[0] + 12] == b"vide":
                tracks.append((start, end))
    if not tracks:
        raise BadFileFormat("MP4: no video track")
    if len(tracks) > 1:
        raise UnsupportedFormat("MP4 with %d video tracks: one instance holds one video" % len(tracks))
    return tracks[0]


def _samples(data, stbl, mdat_bytes):
    """(frames, duration in the track's time units) from stsz and stts, checked against the file."""
    stsz = _need(data, stbl, (b"stsz",))
    _full_box(data, stsz, 8)
    size, count = struct.unpack_from(">II", data, stsz[0] + 4)
    if size == 0:
        if stsz[1] - stsz[0] < 12 + 4 * count:
            raise BadFileFormat("MP4: the sample size table is shorter than its count (a damaged file)")
        total = int(numpy.frombuffer(data, ">u4", count, stsz[0] + 12).sum(dtype=numpy.uint64))
    else:
        total = size * count
    if count == 0:
        raise BadFileFormat("MP4: a video track without frames")
    if total > mdat_bytes:
        raise BadFileFormat("MP4: the frames add up to %d bytes, more than the file's media data (%d): a truncated "
                            "or damaged file" % (total, mdat_bytes))
    stts = _need(data, stbl, (b"stts",))
    _full_box(data, stts, 4)
    entries = _u32(data, stts[0] + 4)
    if stts[1] - stts[0] < 8 + 8 * entries:
        raise BadFileFormat("MP4: the time-to-sample table is shorter than its count (a damaged file)")
    table = numpy.frombuffer(data, ">u4", 2 * entries, stts[0] + 8).astype(numpy.uint64).reshape(entries, 2)
    if int(table[:, 0].sum()) != count:
        raise BadFileFormat("MP4: the track's tables disagree on its number of frames (a damaged or forged file)")
    return count, int((table[:, 0] * table[:, 1]).sum())


def _chunks_inside(data, stbl):
    """Raise unless every chunk of the track starts inside the file."""
    for kind, width in ((b"stco", ">u4"), (b"co64", ">u8")):
        found = _child(data, stbl[0], stbl[1], kind)
        if found is None:
            continue
        _full_box(data, found, 4)
        count = _u32(data, found[0] + 4)
        size = numpy.dtype(width).itemsize
        if found[1] - found[0] < 8 + size * count:
            raise BadFileFormat("MP4: the chunk offset table is shorter than its count (a damaged file)")
        if count and int(numpy.frombuffer(data, width, count, found[0] + 8).max()) >= len(data):
            raise BadFileFormat("MP4: a chunk starts past the end of the file (a truncated file)")
        return
    raise BadFileFormat("MP4: no chunk offset table")


def read_mp4(data):
    """The Video of an MP4 file.

    Raises:
        BadFileFormat: not an MP4 file, or truncated, or with inconsistent boxes.
        UnsupportedFormat: a codec, profile or level with no DICOM transfer syntax.
    """
    if data[4:8] != b"ftyp":
        raise BadFileFormat("Not an MP4 file (it does not start with an ftyp box)")
    top = list(_boxes(data, 0, len(data)))
    moov = [(start, end) for kind, start, end in top if kind == b"moov"]
    if len(moov) != 1:
        raise BadFileFormat("MP4: %s moov box (a truncated or damaged file)" % ("no" if not moov else "more than one"))
    mdat_bytes = sum(end - start for kind, start, end in top if kind == b"mdat")
    trak = _video_track(data, moov[0])
    mdhd = _need(data, trak, (b"mdia", b"mdhd"))
    version = _full_box(data, mdhd, 20)
    timescale = _u32(data, mdhd[0] + (20 if version == 1 else 12))
    stbl = _need(data, trak, (b"mdia", b"minf", b"stbl"))
    stsd = _need(data, stbl, (b"stsd",))
    _full_box(data, stsd, 4)
    entries = list(_boxes(data, stsd[0] + 8, stsd[1]))
    if len(entries) != 1:
        raise UnsupportedFormat("MP4 video track with %d sample descriptions: one is supported" % len(entries))
    codec, start, end = entries[0]
    if codec not in _CODECS:
        raise UnsupportedFormat("MP4 video of codec '%s' has no DICOM transfer syntax (DICOM takes H.264 and HEVC)"
                                % codec.decode("latin-1"))
    if end - start < _VISUAL_SAMPLE_ENTRY:
        raise BadFileFormat("MP4: a truncated video sample description")
    width, height = struct.unpack_from(">HH", data, start + 24)
    reader, config, compression = _CODECS[codec]
    found = _child(data, start + _VISUAL_SAMPLE_ENTRY, end, config)
    if found is None:
        raise BadFileFormat("MP4: %s video without its %s box" % (codec.decode(), config.decode()))
    transfer_syntax, bits, description = reader(data, found)
    if width == 0 or height == 0:
        raise BadFileFormat("MP4: a video of %dx%d pixels" % (width, height))
    frames, duration = _samples(data, stbl, mdat_bytes)
    _chunks_inside(data, stbl)
    if timescale == 0 or duration == 0:
        raise BadFileFormat("MP4: a video track without a duration")
    return Video(transfer_syntax, width, height, frames, 1000.0 * duration / timescale / frames, bits, compression,
                 description)


# ---- MPEG-2 ----------------------------------------------------------------------------

_START = b"\x00\x00\x01"
_PICTURE = b"\x00\x00\x01\x00"


def _pes_payload(data, at, end, stream):
    """The start of a PES packet's payload (MPEG-2 or MPEG-1 system syntax)."""
    if stream == 0xBE or stream == 0xBF:  # padding, private stream 2: no header extension
        return at + 6
    if at + 9 <= end and data[at + 6] & 0xC0 == 0x80:  # MPEG-2 PES header
        return at + 9 + data[at + 8]
    cursor = at + 6
    while cursor < end and data[cursor] == 0xFF:  # MPEG-1: stuffing, STD buffer, time stamps
        cursor += 1
    if cursor < end and data[cursor] & 0xC0 == 0x40:
        cursor += 2
    if cursor < end:
        marker = data[cursor] & 0xF0
        cursor += 5 if marker == 0x20 else 10 if marker == 0x30 else 1
    return cursor


def _program_stream(data):
    """(first video bytes, pictures) of an MPEG program stream, walking its packs and packets.

    Raises:
        BadFileFormat: a packet past the end, or bytes that are no packet.
    """
    at, pictures, head, tail = 0, 0, bytearray(), b""
    end = len(data)
    while at < end:
        if data[at:at + 3] != _START or at + 4 > end:
            raise BadFileFormat("MPEG: no start code at offset %d (a damaged file)" % at)
        code = data[at + 3]
        if code == 0xB9:  # program end
            at += 4
            continue
        if code == 0xBA:
            if at + 5 > end:
                raise BadFileFormat("MPEG: a truncated pack header")
            if data[at + 4] & 0xC0 == 0x40:  # MPEG-2 pack
                if at + 14 > end:
                    raise BadFileFormat("MPEG: a truncated pack header")
                at += 14 + (data[at + 13] & 7)
            else:
                at += 12
            continue
        if code < 0xBB or at + 6 > end:
            raise BadFileFormat("MPEG: a packet of stream %#x at offset %d is not a program stream packet" % (code, at))
        stop = at + 6 + struct.unpack_from(">H", data, at + 4)[0]
        if stop > end:
            raise BadFileFormat("MPEG: the packet at offset %d runs past the end of the file (a truncated file)" % at)
        if 0xE0 <= code <= 0xEF:
            payload = data[_pes_payload(data, at, stop, code):stop]
            pictures += payload.count(_PICTURE) + (tail + payload[:3]).count(_PICTURE)
            tail = payload[-3:]
            if len(head) < 4096:
                head += payload[:4096]
        at = stop
    return bytes(head), pictures


def _sequence(head):
    """(width, height, frame rate, profile and level byte, chroma format) from the sequence header and extension."""
    at = head.find(b"\x00\x00\x01\xb3")
    if at < 0 or len(head) < at + 12:
        raise BadFileFormat("MPEG: no video sequence header")
    width = head[at + 4] << 4 | head[at + 5] >> 4
    height = (head[at + 5] & 0x0F) << 8 | head[at + 6]
    rate = _MPEG2_FRAME_RATES.get(head[at + 7] & 0x0F)
    extension = head.find(b"\x00\x00\x01\xb5", at + 12)
    if extension < 0 or len(head) < extension + 10 or head[extension + 4] >> 4 != 1:
        raise UnsupportedFormat("MPEG-1 video has no DICOM transfer syntax (DICOM takes MPEG-2 Main profile at Main "
                                "or High level)")
    ext = head[extension + 4:extension + 10]
    profile_level = (ext[0] & 0x0F) << 4 | ext[1] >> 4
    chroma = ext[1] >> 1 & 3
    width |= ((ext[1] & 1) << 1 | ext[2] >> 7) << 12
    height |= (ext[2] >> 5 & 3) << 12
    numerator, denominator = (ext[5] >> 5 & 3) + 1, (ext[5] & 0x1F) + 1
    if rate is None or width == 0 or height == 0:
        raise BadFileFormat("MPEG: a sequence header of %dx%d pixels, frame rate code %d" % (width, height,
                                                                                             head[at + 7] & 0x0F))
    return width, height, rate * numerator / denominator, profile_level, chroma


def read_mpeg2(data):
    """The Video of an MPEG-2 program stream or elementary video stream.

    Raises:
        BadFileFormat: neither, truncated packets, or no sequence header.
        UnsupportedFormat: MPEG-1, a transport stream, or a profile and level with no DICOM transfer syntax.
    """
    if len(data) >= 376 and data[0] == 0x47 and data[188] == 0x47:
        raise UnsupportedFormat("An MPEG transport stream: send its program stream or its video elementary stream")
    if data[:4] == b"\x00\x00\x01\xba":
        head, pictures = _program_stream(data)
    elif data[:4] == b"\x00\x00\x01\xb3":
        head, pictures = data[:4096], data.count(_PICTURE)
    else:
        raise BadFileFormat("Not an MPEG-2 program or video stream (no pack or sequence header first)")
    width, height, rate, profile_level, chroma = _sequence(head)
    escape, profile, level = profile_level >> 7, profile_level >> 4 & 7, profile_level & 0x0F
    if escape:
        description = "MPEG-2 %s profile" % ("4:2:2" if profile_level in (0x82, 0x85) else "escape %#x" % profile_level)
    else:
        description = "MPEG-2 %s profile at %s level" % (_MPEG2_PROFILES.get(profile, "profile %d" % profile),
                                                         _MPEG2_LEVELS.get(level, "level %d" % level))
    takes = "MPEG-2 Main profile at Main or High level, 4:2:0"
    if escape or chroma != 1 or profile not in (4, 5):
        if not escape and chroma != 1:
            description += " (chroma format %d)" % chroma
        raise _no_syntax(description, takes)
    # A Main profile, Main level decoder decodes Simple profile and Low level streams (13818-2 8.2).
    if level in (8, 10):
        transfer_syntax = MPEG2_MAIN_LEVEL
    elif level in (4, 6) and profile == 4:
        transfer_syntax = MPEG2_HIGH_LEVEL
    else:
        raise _no_syntax(description, takes)
    if pictures == 0:
        raise BadFileFormat("MPEG: a video without pictures")
    return Video(transfer_syntax, width, height, pictures, 1000.0 / rate, 8, "ISO_13818_2", description)


READERS = {"video/mp4": read_mp4, "video/mpeg": read_mpeg2}
