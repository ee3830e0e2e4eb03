"""dicomize.video: MP4 and MPEG-2 headers read without decoding; files made here box by box."""
import struct

import pytest

from advanced_rest.dicomize import video
from advanced_rest.errors import BadFileFormat, UnsupportedFormat


def box(kind, *parts):
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full(kind, *parts, version=0):
    return box(kind, bytes([version, 0, 0, 0]), *parts)


def avcc(profile=100, level=41, constraints=0, sps_tail=b"\xa8"):
    sps = bytes([0x67, profile, constraints, level]) + sps_tail
    return box(b"avcC", bytes([1, profile, constraints, level, 0xFF, 0xE1]), struct.pack(">H", len(sps)), sps, b"\x00")


def hvcc(profile=1, level=93, tier=0, chroma=1, depth=8):
    record = bytearray(23)
    record[0], record[1], record[12] = 1, tier << 5 | profile, level
    record[16], record[17], record[18] = 0xFC | chroma, 0xF8 | depth - 8, 0xF8 | depth - 8
    return box(b"hvcC", bytes(record))


def visual_entry(codec, config, width=64, height=48):
    fields = bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", width, height) + bytes(50)
    return box(codec, fields, config)


def mp4(codec=b"avc1", config=None, frames=10, delta=512, timescale=12800, mdat=1000, sizes=None):
    """An MP4 of one video track: `frames` samples of `delta` units each, in `mdat` bytes of media."""
    sizes = sizes or [mdat // frames] * frames
    stbl = box(b"stbl",
               full(b"stsd", struct.pack(">I", 1), visual_entry(codec, config if config is not None else avcc())),
               full(b"stts", struct.pack(">III", 1, frames, delta)),
               full(b"stsz", struct.pack(">II", 0, len(sizes)), struct.pack(">%dI" % len(sizes), *sizes)),
               full(b"stco", struct.pack(">II", 1, 40)))
    trak = box(b"trak", box(b"mdia", full(b"mdhd", bytes(8), struct.pack(">II", timescale, frames * delta), bytes(4)),
                            full(b"hdlr", bytes(4), b"vide", bytes(13)), box(b"minf", stbl)))
    return box(b"ftyp", b"isom", bytes(4), b"isomavc1") + box(b"mdat", bytes(mdat)) + box(b"moov", trak)


@pytest.mark.parametrize("config, syntax, bits, says", [
    (avcc(100, 41), video.H264_HIGH_41, 8, "H.264 High profile, level 4.1"),
    (avcc(77, 30, sps_tail=b""), video.H264_HIGH_41, 8, "H.264 Main profile, level 3.0"),
    (avcc(66, 21, 0x40, b""), video.H264_HIGH_41, 8, "H.264 Constrained Baseline profile, level 2.1"),
    (avcc(100, 42), video.H264_HIGH_42_2D, 8, "level 4.2"),
    (hvcc(1, 153), video.HEVC_MAIN_51, 8, "HEVC Main profile, Main tier, level 5.1"),
    (hvcc(2, 120, depth=10), video.HEVC_MAIN10_51, 10, "HEVC Main 10 profile"),
], ids=["h264-high", "h264-main", "h264-constrained-baseline", "h264-4.2", "hevc-main", "hevc-main10"])
def test_profile_and_level_choose_the_transfer_syntax(config, syntax, bits, says):
    codec = b"hvc1" if config[4:8] == b"hvcC" else b"avc1"
    stream = video.read_mp4(mp4(codec, config))
    assert (stream.transfer_syntax, stream.bits_stored, stream.width, stream.height) == (syntax, bits, 64, 48)
    assert (stream.frames, stream.frame_time) == (10, 40.0)
    assert says in stream.description


@pytest.mark.parametrize("codec, config, says", [
    (b"avc1", avcc(100, 51), "H.264 High profile, level 5.1"),
    (b"avc1", avcc(244, 30, sps_tail=b"\x91"), "High 4:4:4 Predictive profile, level 3.0 (8-bit, chroma format 3)"),
    (b"avc1", avcc(66, 30, 0, b""), "H.264 Baseline profile"),
    (b"avc1", avcc(110, 30, sps_tail=b"\xa4\x80"), "High 10 profile"),
    (b"hvc1", hvcc(1, 156), "level 5.2"),
    (b"hvc1", hvcc(1, 93, tier=1), "High tier"),
    (b"hvc1", hvcc(4, 93, chroma=3), "Range Extensions profile"),
    (b"mp4v", b"", "codec 'mp4v'"),
], ids=["h264-5.1", "h264-444", "h264-baseline", "h264-high10", "hevc-5.2", "hevc-high-tier", "hevc-rext", "mpeg4"])
def test_a_stream_without_transfer_syntax_is_named(codec, config, says):
    with pytest.raises(UnsupportedFormat) as raised:
        video.read_mp4(mp4(codec, config))
    assert raised.value.http_status == 415 and says in raised.value.details


@pytest.mark.parametrize("data, says", [
    (mp4()[:-30], "past the end of the file"),
    (mp4()[:700], "past the end of the file"),
    (b"RIFF" + bytes(60), "Not an MP4 file"),
    (box(b"ftyp", b"isom") + box(b"mdat", bytes(10)), "no moov box"),
    (mp4(mdat=100, sizes=[500] * 10), "more than the file's media data"),
    (mp4(codec=b"avc1", config=box(b"avcC", bytes([1, 100, 0, 41, 0xFF, 0xE1, 0, 4, 0x67, 77, 0, 41]))),
     "disagree"),
], ids=["truncated", "cut-in-mdat", "not-mp4", "no-moov", "forged-sizes", "forged-sps"])
def test_a_truncated_or_forged_mp4_is_a_bad_file(data, says):
    with pytest.raises(BadFileFormat) as raised:
        video.read_mp4(data)
    assert raised.value.http_status == 400 and says in raised.value.details


def mpeg2(width=720, height=576, rate_code=3, profile_level=0x48, chroma=1, pictures=5):
    """An MPEG-2 video elementary stream: sequence header and extension, then `pictures` picture headers."""
    header = b"\x00\x00\x01\xb3" + bytes([width >> 4, (width & 0xF) << 4 | height >> 8, height & 0xFF,
                                          0x20 | rate_code]) + bytes([0xFF, 0xFF, 0xE0, 0x18])
    extension = b"\x00\x00\x01\xb5" + bytes([0x10 | profile_level >> 4, (profile_level & 0xF) << 4 | chroma << 1,
                                             0, 1, 0, 0])
    return header + extension + (b"\x00\x00\x01\x00" + bytes(8)) * pictures + b"\x00\x00\x01\xb7"


@pytest.mark.parametrize("stream, syntax, size, frame_time", [
    (mpeg2(), video.MPEG2_MAIN_LEVEL, (720, 576), 40.0),
    (mpeg2(1920, 1080, 4, 0x44), video.MPEG2_HIGH_LEVEL, (1920, 1080), 1001 / 30),
    (mpeg2(352, 288, 3, 0x4A), video.MPEG2_MAIN_LEVEL, (352, 288), 40.0),
], ids=["main-level", "high-level", "low-level"])
def test_mpeg2_elementary_streams(stream, syntax, size, frame_time):
    read = video.read_mpeg2(stream)
    assert (read.transfer_syntax, (read.width, read.height), read.frames) == (syntax, size, 5)
    assert read.frame_time == pytest.approx(frame_time)


def test_mpeg2_program_stream_counts_pictures_across_packets():
    es = mpeg2(pictures=4)
    cut = es.index(b"\x00\x00\x01\x00", 40) + 2  # a picture start code split between two packets

    def packet(payload):
        return b"\x00\x00\x01\xe0" + struct.pack(">H", len(payload) + 3) + b"\x80\x00\x00" + payload
    pack = b"\x00\x00\x01\xba\x44" + bytes(8) + b"\xf8"
    read = video.read_mpeg2(pack + packet(es[:cut]) + pack + packet(es[cut:]) + b"\x00\x00\x01\xb9")
    assert (read.frames, read.transfer_syntax) == (4, video.MPEG2_MAIN_LEVEL)
    with pytest.raises(BadFileFormat, match="past the end"):
        video.read_mpeg2(pack + packet(es)[:-5])


@pytest.mark.parametrize("stream, says", [
    (mpeg2(profile_level=0x85), "MPEG-2 4:2:2 profile"),
    (mpeg2(chroma=2), "chroma format 2"),
    (mpeg2(profile_level=0x14), "MPEG-2 High profile at High level"),
    (mpeg2()[:12] + bytes(20), "MPEG-1 video"),
], ids=["422", "chroma-422", "high-profile", "mpeg1"])
def test_mpeg2_without_transfer_syntax(stream, says):
    with pytest.raises(UnsupportedFormat) as raised:
        video.read_mpeg2(stream)
    assert says in raised.value.details


def test_not_mpeg():
    with pytest.raises(BadFileFormat):
        video.read_mpeg2(b"\x89PNG" + bytes(30))
    with pytest.raises(UnsupportedFormat, match="transport stream"):
        video.read_mpeg2((b"\x47" + bytes(187)) * 3)
