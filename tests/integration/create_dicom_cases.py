"""Test-case table for POST /tools/create-dicom parity (core Orthanc vs. advanced-rest).

Pure data + small deterministic payload generators (Pillow/stdlib only).
Each case is sent as-is to a core server and to a plugin server of the same
version; the parity test compares HTTP status, error OrthancStatus, answer
fields and the stored DICOM files element by element (ignoring UIDs,
dates/times and generated PatientID).

CORE_ANSWERS below records what each core answered to each case; on the
bookworm and trixie legs, ORACLE_1_13_0 stands in for the 1.13.0 core those legs lack.
"""

import base64
import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from PIL import Image

V110 = "1.10.1"
V1127 = "1.12.7"
V113 = "1.13.0"
ALL_VERSIONS = (V110, V1127, V113)

# Placeholder replaced by the parity test with the Orthanc id of the parent
# resource (see Case.parent / Case.setup / PARENT_SETUP).
PARENT = "${PARENT}"


@dataclass
class Case:
    id: str
    body: Any                                  # dict/list/str -> JSON-encoded; bytes -> sent raw
    expect_status: Optional[int] = None       # plugin status if it deliberately differs from core
    config: Optional[dict] = None             # extra Orthanc configuration for both servers
    legs: Optional[Tuple[str, ...]] = None    # restrict to these versions
    parent: Optional[str] = None              # "patient" | "study" | "series" | "instance"
    setup: Optional[dict] = None              # body creating the parent (default PARENT_SETUP)
    default_encoding: Optional[str] = None    # PUT /tools/default-encoding before (restore Latin1 after)
    extra_get: Tuple[str, ...] = ()           # extra GET /instances/{id}<path> to compare (status + body)
    repeat: int = 1                           # POST the body this many times; compare the last answer
    why: str = ""


# ---------------------------------------------------------------------------
# Deterministic payload generators
# ---------------------------------------------------------------------------

def data_uri(mime: str, payload: bytes) -> str:
    return "data:%s;base64,%s" % (mime, base64.b64encode(payload).decode("ascii"))


def _gradient(mode: str, w: int, h: int) -> Image.Image:
    """Deterministic gradient image in the given Pillow mode."""
    if mode == "1":
        img = Image.new("1", (w, h))
        img.putdata([((x // 2 + y // 2) % 2) for y in range(h) for x in range(w)])
        return img
    if mode == "L":
        img = Image.new("L", (w, h))
        img.putdata([(x * 255 // max(w - 1, 1) + y * 7) % 256 for y in range(h) for x in range(w)])
        return img
    if mode == "I;16":
        img = Image.new("I;16", (w, h))
        img.putdata([(x * 4000 + y * 131) % 65536 for y in range(h) for x in range(w)])
        return img
    if mode == "LA":
        img = Image.new("LA", (w, h))
        img.putdata([((x * 16 + y) % 256, (y * 20) % 256) for y in range(h) for x in range(w)])
        return img
    if mode == "P":
        img = Image.new("P", (w, h))
        img.putpalette([v for i in range(256) for v in (i, 255 - i, (i * 3) % 256)])
        img.putdata([(x * 8 + y * 3) % 256 for y in range(h) for x in range(w)])
        return img
    if mode in ("RGB", "RGBA", "CMYK"):
        n = len(mode)
        img = Image.new(mode, (w, h))
        img.putdata([tuple([(x * 16) % 256, (y * 16) % 256, ((x + y) * 8) % 256, 200 - y][:n])
                     for y in range(h) for x in range(w)])
        return img
    raise ValueError(mode)


def png_bytes(mode: str = "L", w: int = 16, h: int = 12) -> bytes:
    b = io.BytesIO()
    _gradient(mode, w, h).save(b, format="PNG")
    return b.getvalue()


def png_data_uri(mode: str = "L", w: int = 16, h: int = 12) -> str:
    return data_uri("image/png", png_bytes(mode, w, h))


def raw_png(color_type: int, bit_depth: int, w: int = 8, h: int = 6) -> bytes:
    """Hand-made PNG (for 16-bit RGB/RGBA/LA which Pillow cannot write)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    bpc = bit_depth // 8
    rows = b""
    for y in range(h):
        row = b"\x00"
        for x in range(w):
            for c in range(channels):
                v = (x * 5000 + y * 3000 + c * 9000) % (1 << bit_depth)
                row += v.to_bytes(bpc, "big")
        rows += row

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b""))


def jpeg_bytes(mode: str = "L", w: int = 16, h: int = 16, progressive: bool = False) -> bytes:
    b = io.BytesIO()
    _gradient(mode, w, h).save(b, format="JPEG", quality=90, progressive=progressive)
    return b.getvalue()


def pam_bytes(w: int = 4, h: int = 3) -> bytes:
    hdr = "P7\nWIDTH %d\nHEIGHT %d\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n" % (w, h)
    return hdr.encode() + bytes((x * 40 + y) % 256 for y in range(h) for x in range(w))


def pdf_bytes(odd: bool = False) -> bytes:
    body = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")
    if (len(body) % 2 == 1) != odd:
        body = body[:-1] + b" \n"
    assert (len(body) % 2 == 1) == odd
    return body


STL_ASCII = (b"solid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\n"
             b"endloop\nendfacet\nendsolid t\n")  # 105 bytes: odd length
STL_BINARY = (b"binary-stl".ljust(80, b"\0") + struct.pack("<I", 1)
              + struct.pack("<12fH", 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0))
OBJ_TEXT = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
MTL_TEXT = b"newmtl m\nKd 1 0 0.5\n"  # 21 bytes: odd length

PNG_L = png_data_uri("L")
PNG_TINY = png_data_uri("L", 2, 2)
JPEG_RGB = jpeg_bytes("RGB")

PARENT_SETUP = {
    "Tags": {
        "SpecificCharacterSet": "ISO_IR 192",
        "PatientName": "Parent^Patiént",
        "PatientID": "PARENT-ID",
        "PatientBirthDate": "19700101",
        "PatientSex": "O",
        "StudyDescription": "Parent study",
        "AccessionNumber": "ACC1",
        "StudyDate": "20200102",
        "StudyTime": "030405",
        "ReferringPhysicianName": "Dr^Who",
        "Modality": "OT",
        "SeriesDescription": "Parent series",
        "SeriesNumber": "7",
        "SeriesDate": "20200103",
        "BodyPartExamined": "HEAD",
        "InstanceNumber": "1",
        "ImageComments": "instance-level, must not be copied",
    }
}

PARENT_SETUP_LATIN1 = {"Tags": {"PatientName": "Parent^Patiént", "PatientID": "PARENT-L1",
                                "StudyDescription": "Étude"}}

DICT_CONFIG = {
    "Dictionary": {
        "0009,1001": ["DS", "MyPrivateDS", 1, 1, "MyCreator"],
        "0009,1002": ["US", "MyPrivateUS", 1, 4, "MyCreator"],
        "4321,1012": ["LO", "MyCustomLO", 1, 1, "OtherCreator"],
        "0011,1010": ["SQ", "MyPrivateSQ", 1, 1, "MyCreator"],
    },
    "DefaultPrivateCreator": "MyCreator",
}

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

CASES = [
    # 1. Body shape -----------------------------------------------------------
    Case("body-not-json", b"this is not json", why="unparsable body"),
    Case("body-json-array", [1, 2], why="JSON but not an object"),
    Case("body-json-string", "hello"),
    Case("body-empty-object", {}, why="legacy (V1) path with no tags: creates an empty instance"),
    Case("v1-flat", {"PatientName": "Legacy^Flat", "PatientID": "LEG1", "StudyDescription": "x"},
         why="legacy body without 'Tags'"),
    Case("v1-flat-pixeldata", {"PatientName": "Legacy^Png", "PixelData": PNG_L},
         why="legacy body: PixelData is a data URI"),
    Case("v1-flat-non-string", {"PatientName": "Legacy", "Rows": 12}, why="legacy: non-string value"),
    Case("v1-flat-unknown-tag", {"NoSuchTagName": "x"}, expect_status=400,
         why="legacy: unknown name (core 500)"),
    Case("v1-flat-nonascii", {"PatientName": "Jodogne^Sébastien"}, why="legacy: charset handling"),
    Case("v1-flat-sequence", {"PatientName": "x", "ReferencedStudySequence": "abc"},
         why="legacy: string put into a SQ tag"),
    Case("tags-is-array", {"Tags": []}, why="Tags not an object"),
    Case("tags-is-string", {"Tags": "x"}),
    Case("tags-is-null", {"Tags": None}),
    Case("tags-empty", {"Tags": {}}, why="minimal V2 body: generated elements"),

    # 2. Tags -----------------------------------------------------------------
    Case("tags-basic", {"Tags": {"PatientName": "Hello^World", "PatientID": "P1", "Modality": "CT",
                                 "StudyDescription": "Desc", "SeriesNumber": "3", "InstanceNumber": "5"}}),
    Case("tags-hex-upper-lower", {"Tags": {"0010,0010": "Hex^Lower", "0008,103E": "upper hex",
                                           "0020,000d": "1.2.3.4"}, "Force": True}),
    Case("tags-hex-no-comma", {"Tags": {"00100010": "NoComma"}}),
    Case("tags-unknown-name", {"Tags": {"NoSuchTagName": "x"}}, expect_status=400,
         why="core 500 InternalError/UnknownDicomTag; plugin 400"),
    Case("tags-null-value", {"Tags": {"PatientName": None, "StudyDescription": None}}),
    Case("tags-empty-string", {"Tags": {"PatientName": "", "StudyDescription": ""}}),
    Case("tags-sequence", {"Tags": {"ReferencedStudySequence": [
        {"ReferencedSOPClassUID": "1.2.3", "ReferencedSOPInstanceUID": "1.2.3.4"},
        {"ReferencedSOPClassUID": "1.2.4"}]}}),
    Case("tags-sequence-nested", {"Tags": {"RequestAttributesSequence": [
        {"RequestedProcedureID": "RP1", "ScheduledProtocolCodeSequence": [
            {"CodeValue": "C1", "CodingSchemeDesignator": "99X", "CodeMeaning": "Méaning"}]}]}}),
    Case("tags-sequence-empty", {"Tags": {"ReferencedStudySequence": []}}),
    Case("tags-sequence-empty-item", {"Tags": {"ReferencedStudySequence": [{}]}}),
    Case("tags-sequence-item-array", {"Tags": {"ReferencedStudySequence": [[]]}}),
    Case("tags-sequence-item-string", {"Tags": {"ReferencedStudySequence": ["x"]}}),
    Case("tags-sequence-as-string", {"Tags": {"ReferencedStudySequence": "x"}}),
    Case("tags-array-for-string-vr", {"Tags": {"PatientName": ["a", "b"]}}),
    Case("tags-object-value", {"Tags": {"PatientName": {"a": 1}}}),
    Case("tags-number-string-vr", {"Tags": {"PatientName": 42, "StudyDescription": 1.5}}),
    Case("tags-bool-string-vr", {"Tags": {"PatientName": True}}),
    Case("tags-number-is-ds", {"Tags": {"SeriesNumber": 3, "SliceThickness": 2.5}}),
    Case("tags-us-string", {"Tags": {"Rows": "12", "Columns": "34", "0018,1310": "1\\2\\3\\4"}},
         why="US strings incl. AcquisitionMatrix VM 4"),
    Case("tags-us-number", {"Tags": {"Rows": 12}}),
    Case("tags-us-bool", {"Tags": {"Rows": True}}),
    Case("tags-us-out-of-range", {"Tags": {"Rows": "70000"}}),
    Case("tags-us-negative", {"Tags": {"Rows": "-1"}}),
    Case("tags-us-non-numeric", {"Tags": {"Rows": "abc"}}),
    Case("tags-us-empty", {"Tags": {"Rows": ""}}),
    Case("tags-us-spaces", {"Tags": {"Rows": " 12 "}}),
    Case("tags-ss-sl-ul", {"Tags": {"0018,9219": "-5", "0018,6020": "-70000", "0028,9001": "4000000000"}},
         why="SS TagAngleSecondAxis, SL ReferencePixelX0, UL DataPointRows"),
    Case("tags-fl-fd", {"Tags": {"0018,9087": "1000.5", "0018,9306": "2.25\\3.5", "0018,9069": "1e3"}},
         why="FD DiffusionBValue, FD SingleCollimationWidth, FD ParallelReductionFactorInPlane"),
    Case("tags-fl", {"Tags": {"0018,9180": "1.5", "0040,9225": "0.5"}}),
    Case("tags-fd-non-numeric", {"Tags": {"0018,9087": "abc"}}),
    Case("tags-fd-number", {"Tags": {"0018,9087": 1.5}}),
    Case("tags-at", {"Tags": {"FrameIncrementPointer": "0018,1063"}}),
    Case("tags-at-name", {"Tags": {"FrameIncrementPointer": "FrameTime"}}),
    Case("tags-at-bad", {"Tags": {"FrameIncrementPointer": "zz"}}, expect_status=400,
         why="AT value parsed as a tag name: same UnknownDicomTag 500 path in core"),
    Case("tags-ds-is-multi", {"Tags": {"PixelSpacing": "0.5\\0.25", "ImagePositionPatient": "1\\2\\3",
                                       "ReferencedFrameNumber": "1\\2"}}),
    Case("tags-ob-data-uri", {"Tags": {"EncapsulatedDocument": data_uri("application/octet-stream", b"\x00\x01\x02")}},
         why="OB odd length, InterpretBinaryTags default true"),
    Case("tags-ob-data-uri-nointerpret", {"Tags": {"EncapsulatedDocument": data_uri("application/octet-stream", b"\x00\x01\x02")},
                                          "InterpretBinaryTags": False}),
    Case("tags-ow-data-uri", {"Tags": {"RedPaletteColorLookupTableData": data_uri("application/octet-stream", b"\x01\x02\x03\x04")}}),
    Case("tags-string-data-uri", {"Tags": {"PatientName": data_uri("text/plain", b"Decoded^Name")}},
         why="data URI in a string VR is decoded too when InterpretBinaryTags"),
    Case("tags-string-data-uri-nointerpret", {"Tags": {"PatientName": data_uri("text/plain", b"Decoded^Name")},
                                              "InterpretBinaryTags": False}),
    Case("tags-string-data-uri-octet", {"Tags": {"PatientName": data_uri("application/octet-stream", b"Decoded^Name")}},
         why="only the application/octet-stream data URI prefix is decoded in ordinary tags"),
    Case("tags-encdoc-pdf-uri", {"Tags": {"EncapsulatedDocument": data_uri("application/pdf", pdf_bytes())}},
         why="EncapsulatedDocument/PixelData data URIs go through the Content embedding logic"),
    Case("tags-ob-other-data-uri", {"Tags": {"0014,3080": data_uri("application/octet-stream", b"\x01\x02\x03")}},
         why="BadPixelImage OB: decoded binary, padded"),
    Case("tags-ow-plain-string", {"Tags": {"RedPaletteColorLookupTableData": "abcd"}}),
    Case("tags-fl-b1rms", {"Tags": {"0018,1320": "1.5", "0018,0013": "-2.25"}}, why="FL tags"),
    Case("tags-us-or-ss", {"Tags": {"SmallestImagePixelValue": "5"}}, why="ambiguous US or SS VR"),
    Case("tags-ow-numeric", {"Tags": {"RedPaletteColorLookupTableData": "1\\2\\65535"}},
         why="1.10.1: 500 Internal error; 1.13.0: OW parsed as backslash-separated words"),
    Case("tags-ob-plain-string", {"Tags": {"EncapsulatedDocument": "plain"}}),
    Case("tags-pixeldata", {"Tags": {"PixelData": PNG_L}}, why="PixelData must go through Content"),
    Case("tags-pixeldata-hex", {"Tags": {"7fe0,0010": "abc"}}),
    Case("charset-iso-ir-100", {"Tags": {"SpecificCharacterSet": "ISO_IR 100", "PatientName": "Jodogne^Sébastien"}}),
    Case("charset-iso-ir-192", {"Tags": {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "Jodogne^Sébastien",
                                         "StudyDescription": "Иванов 日本"}}),
    Case("charset-iso-ir-144", {"Tags": {"SpecificCharacterSet": "ISO_IR 144", "PatientName": "Иванов^Иван"}}),
    Case("charset-iso-ir-6", {"Tags": {"SpecificCharacterSet": "ISO_IR 6", "PatientName": "Sébastien"}}),
] + [
    # Every other set the core knows, multi-byte ones included: PS3.5 Annex H/I/J's names where it has some.
    Case("charset-" + term.lower().replace("_", "-").replace(" ", "-"),
         {"Tags": {"SpecificCharacterSet": term, "PatientName": name, "InstitutionName": text}})
    for term, name, text in [
        ("ISO_IR 101", "Dvořák^Žofie", "Nemocnice Ústí nad Labem"),
        ("ISO_IR 109", "Ġużeppi^Ħabib", "Sptar Mater Dei"),
        ("ISO_IR 110", "Ķēniņš^Ūdris", "Rīgas slimnīca"),
        ("ISO_IR 148", "Şahin^Ağaoğlu", "İstanbul Hastanesi"),
        ("ISO_IR 127", "قباني^لنزار", "مستشفى القاهرة"),
        ("ISO_IR 126", "Διονυσιος", "Νοσοκομείο Αθηνών"),
        ("ISO_IR 138", "שרון^דבורה", "בית חולים"),
        ("ISO_IR 166", "สมชาย^ใจดี", "โรงพยาบาลศิริราช"),
        ("ISO_IR 13", "ﾔﾏﾀﾞ^ﾀﾛｳ", "ﾋﾞｮｳｲﾝ Tokyo"),
        ("ISO 2022 IR 87", "Yamada^Tarou=山田^太郎=やまだ^たろう", "東京病院"),
        ("GB18030", "Wang^XiaoDong=王^小東", "北京协和医院"),
        ("GBK", "Wang^XiaoDong=王^小东", "北京协和医院"),
        ("ISO 2022 IR 149", "Hong^Gildong=洪^吉洞=홍^길동", "서울대학교병원"),
        ("ISO 2022 IR 58", "Zhang^XiaoDong=张^小东", "上海医院"),
    ]
] + [
    Case("charset-empty", {"Tags": {"SpecificCharacterSet": "", "PatientName": "Sébastien"}}),
    Case("charset-unknown", {"Tags": {"SpecificCharacterSet": "FOO", "PatientName": "x"}}),
    Case("charset-not-string", {"Tags": {"SpecificCharacterSet": 5, "PatientName": "x"}}),
    Case("charset-hex-key", {"Tags": {"0008,0005": "ISO_IR 192", "PatientName": "Sébastien"}},
         why="charset given by hex key is not used for the encoding choice"),
    Case("nonascii-default-latin1", {"Tags": {"PatientName": "Jodogne^Sébastien", "StudyDescription": "Иванов"}},
         why="chars not representable in Latin1"),
    Case("nonascii-default-utf8", {"Tags": {"PatientName": "Jodogne^Sébastien", "StudyDescription": "Иванов"}},
         config={"DefaultEncoding": "Utf8"}),
    Case("default-encoding-put-utf8", {"Tags": {"PatientName": "Jodogne^Sébastien"}}, default_encoding="Utf8"),
    Case("default-encoding-put-cyrillic", {"Tags": {"PatientName": "Иванов"}}, default_encoding="Cyrillic"),
    Case("default-encoding-put-windows1251", {"Tags": {"PatientName": "Иванов"}}, default_encoding="Windows1251"),
    Case("default-encoding-put-ascii", {"Tags": {"PatientName": "Sébastien"}}, default_encoding="Ascii"),
    Case("private-with-creator-field", {"Tags": {"0009,1001": "hello"}, "PrivateCreator": "MyCreator"}),
    Case("private-no-creator", {"Tags": {"0009,1001": "hello"}}),
    Case("private-explicit-creator-tag", {"Tags": {"0009,0010": "MyCreator", "0009,1001": "hello"}}),
    Case("private-creator-tag-only", {"Tags": {"0009,0010": "MyCreator"}}),
    Case("private-sequence", {"Tags": {"0011,1010": [{"PatientName": "in-seq"}]}, "PrivateCreator": "MyCreator"}),
    Case("private-default-creator-config", {"Tags": {"0009,1001": "1.5", "0009,1002": "1\\2"}}, config=DICT_CONFIG),
    Case("private-dictionary-by-name", {"Tags": {"MyPrivateDS": "2.5", "MyPrivateUS": "3"}}, config=DICT_CONFIG),
    Case("private-dictionary-other-creator", {"Tags": {"4321,1012": "custom"}, "PrivateCreator": "OtherCreator"},
         config=DICT_CONFIG),
    Case("private-dictionary-sq", {"Tags": {"MyPrivateSQ": [{"PatientName": "x"}]}}, config=DICT_CONFIG),
    Case("group-length", {"Tags": {"0010,0000": "10"}}),
    Case("group-length-0008", {"Tags": {"0008,0000": "10"}}),
    Case("override-patientid", {"Tags": {"PatientID": "OVR"}}, why="PatientID always allowed"),
    Case("override-study-uid", {"Tags": {"StudyInstanceUID": "1.2.3.4.5"}}),
    Case("override-study-uid-force", {"Tags": {"StudyInstanceUID": "1.2.3.4.5", "SeriesInstanceUID": "1.2.3.4.5.6",
                                               "SOPInstanceUID": "1.2.3.4.5.6.7"}, "Force": True}),
    Case("override-sop-instance-uid", {"Tags": {"SOPInstanceUID": "1.2.3"}}),
    Case("override-sop-class-uid", {"Tags": {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}}),
    Case("override-dates", {"Tags": {"StudyDate": "20010203", "StudyTime": "040506", "SeriesDate": "20010204",
                                     "ContentDate": "20010205", "AcquisitionTime": "101010",
                                     "InstanceCreationDate": "20010206"}}),
    Case("already-stored", {"Tags": {"PatientID": "DUP", "SOPInstanceUID": "1.2.3.999", "StudyInstanceUID": "1.2.3.998",
                                     "SeriesInstanceUID": "1.2.3.997"}, "Force": True}, repeat=2,
         why="second POST answers 200 with Status AlreadyStored and the same ID"),
    Case("override-mediastorage", {"Tags": {"MediaStorageSOPClassUID": "1.2.3"}}),
    Case("override-transfer-syntax", {"Tags": {"TransferSyntaxUID": "1.2.840.10008.1.2"}}),
    Case("force-wrong-type", {"Tags": {}, "Force": "true"}),
    Case("interpret-wrong-type", {"Tags": {}, "InterpretBinaryTags": 1}),
    Case("private-creator-wrong-type", {"Tags": {}, "PrivateCreator": 5}),
    Case("force-false", {"Tags": {"StudyInstanceUID": "1.2.3"}, "Force": False}),

    # 3. Content ---------------------------------------------------------------
    Case("png-gray8", {"Tags": {"PatientName": "png"}, "Content": PNG_L}),
    Case("png-gray16", {"Tags": {}, "Content": png_data_uri("I;16")}),
    Case("png-rgb", {"Tags": {}, "Content": png_data_uri("RGB")}),
    Case("png-rgba", {"Tags": {}, "Content": png_data_uri("RGBA")}),
    Case("png-la", {"Tags": {}, "Content": png_data_uri("LA")}),
    Case("png-palette", {"Tags": {}, "Content": png_data_uri("P")}),
    Case("png-1bit", {"Tags": {}, "Content": png_data_uri("1")}),
    Case("png-rgb16", {"Tags": {}, "Content": data_uri("image/png", raw_png(2, 16))}),
    Case("png-rgba16", {"Tags": {}, "Content": data_uri("image/png", raw_png(6, 16))}),
    Case("png-la16", {"Tags": {}, "Content": data_uri("image/png", raw_png(4, 16))}),
    Case("png-odd-width", {"Tags": {}, "Content": png_data_uri("L", 3, 3)}, why="odd pixel data length padding"),
    Case("png-photometric-preset", {"Tags": {"PhotometricInterpretation": "MONOCHROME1"}, "Content": PNG_L}),
    Case("png-rows-preset", {"Tags": {"Rows": "99", "BitsAllocated": "16"}, "Content": PNG_L}),
    Case("png-corrupt", {"Tags": {}, "Content": data_uri("image/png", b"\x89PNG garbage")}),
    Case("jpeg-gray", {"Tags": {}, "Content": data_uri("image/jpeg", jpeg_bytes("L"))}),
    Case("jpeg-rgb", {"Tags": {}, "Content": data_uri("image/jpeg", JPEG_RGB)}),
    Case("jpeg-cmyk", {"Tags": {}, "Content": data_uri("image/jpeg", jpeg_bytes("CMYK"))}),
    Case("jpeg-progressive", {"Tags": {}, "Content": data_uri("image/jpeg", jpeg_bytes("RGB", progressive=True))}),
    Case("mime-image-jpg", {"Tags": {}, "Content": data_uri("image/jpg", JPEG_RGB)}),
    Case("mime-uppercase", {"Tags": {}, "Content": PNG_L.replace("data:image/png", "DATA:IMAGE/PNG")}),
    Case("datauri-no-base64", {"Tags": {}, "Content": PNG_L.replace(";base64", "")}),
    Case("datauri-bad-base64", {"Tags": {}, "Content": "data:image/png;base64,@@@@"}),
    Case("datauri-charset-param", {"Tags": {}, "Content": PNG_L.replace("image/png;", "image/png;charset=utf-8;")}),
    Case("datauri-whitespace", {"Tags": {}, "Content": PNG_L[:40] + "\n" + PNG_L[40:]}),
    Case("datauri-leading-space", {"Tags": {}, "Content": " " + PNG_L}),
    Case("datauri-slashes", {"Tags": {}, "Content": PNG_L.replace("data:", "data://")}),
    Case("datauri-not-a-uri", {"Tags": {}, "Content": "hello"}),
    Case("datauri-empty-payload", {"Tags": {}, "Content": "data:image/png;base64,"}),
    Case("pdf", {"Tags": {"PatientName": "pdf"}, "Content": data_uri("application/pdf", pdf_bytes())},
         extra_get=("/pdf",)),
    Case("pdf-odd-length", {"Tags": {}, "Content": data_uri("application/pdf", pdf_bytes(odd=True))},
         extra_get=("/pdf",)),
    Case("pdf-not-pdf", {"Tags": {}, "Content": data_uri("application/pdf", b"hello world")}),
    Case("pdf-presets", {"Tags": {"Modality": "DOC", "SOPClassUID": "1.2.3", "ConversionType": "SI",
                                  "DocumentTitle": "t"}, "Content": data_uri("application/pdf", pdf_bytes())}),
    Case("stl-ascii", {"Tags": {}, "Content": data_uri("model/stl", STL_ASCII)}),
    Case("stl-binary", {"Tags": {}, "Content": data_uri("model/stl", STL_BINARY)}),
    Case("obj", {"Tags": {}, "Content": data_uri("model/obj", OBJ_TEXT)}),
    Case("mtl-odd", {"Tags": {}, "Content": data_uri("model/mtl", MTL_TEXT)}),
    Case("pam", {"Tags": {}, "Content": data_uri("image/x-portable-arbitrarymap", pam_bytes())}),
    Case("octet-stream-no-dims", {"Tags": {}, "Content": data_uri("application/octet-stream", bytes(range(12)))}),
    Case("octet-stream-with-dims", {"Tags": {"Rows": "3", "Columns": "4", "BitsAllocated": "8", "BitsStored": "8",
                                             "HighBit": "7", "SamplesPerPixel": "1", "PixelRepresentation": "0",
                                             "PhotometricInterpretation": "MONOCHROME2"},
                                    "Content": data_uri("application/octet-stream", bytes(range(12)))}),
    Case("octet-stream-odd", {"Tags": {}, "Content": data_uri("application/octet-stream", bytes(range(5)))}),
    Case("mime-gif", {"Tags": {}, "Content": data_uri("image/gif", b"GIF89a")}),
    Case("mime-unknown", {"Tags": {}, "Content": data_uri("foo/bar", b"abc")}),
    Case("content-number", {"Tags": {}, "Content": 5}),
    Case("content-object", {"Tags": {}, "Content": {"a": 1}}),
    Case("content-null", {"Tags": {}, "Content": None}),
    Case("content-empty-string", {"Tags": {}, "Content": ""}),
    Case("series-strings", {"Tags": {"PatientName": "series"}, "Content": [PNG_L, png_data_uri("RGB"), PNG_TINY]}),
    Case("series-items-tags", {"Tags": {"PatientName": "series"}, "Content": [
        {"Content": PNG_L, "Tags": {"ImageComments": "first", "InstanceNumber": "99"}},
        {"Content": PNG_TINY, "Tags": {"ImageComments": "second"}}]}),
    Case("series-mixed-pdf", {"Tags": {}, "Content": [PNG_L, data_uri("application/pdf", pdf_bytes())]}),
    Case("series-single", {"Tags": {}, "Content": [PNG_L]}),
    Case("series-empty", {"Tags": {"PatientName": "empty-series"}, "Content": []}),
    Case("series-item-no-content", {"Tags": {}, "Content": [PNG_L, {"Tags": {"ImageComments": "x"}}]}),
    Case("series-fail-middle", {"Tags": {}, "Content": [PNG_L, "data:foo/bar;base64,AAAA", PNG_TINY]},
         why="what stays stored after a failing item"),
    Case("series-fail-first", {"Tags": {}, "Content": ["data:foo/bar;base64,AAAA", PNG_L]}),
    Case("series-item-number", {"Tags": {}, "Content": [PNG_L, 5]}),
    Case("series-item-unknown-tag", {"Tags": {}, "Content": [PNG_L, {"Content": PNG_L, "Tags": {"NoSuchTagName": "x"}}]},
         expect_status=400),
    Case("series-item-override", {"Tags": {}, "Content": [{"Content": PNG_L, "Tags": {"SOPInstanceUID": "1.2.3"}}]}),
    Case("series-item-tags-not-object", {"Tags": {}, "Content": [{"Content": PNG_L, "Tags": "x"}]}),

    # 4. Encapsulate / Synchronous ---------------------------------------------
    Case("encapsulate-jpeg-rgb", {"Tags": {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "Encapsulate": True,
                                  "Content": data_uri("image/jpeg", JPEG_RGB)}),
    Case("encapsulate-jpeg-gray", {"Tags": {}, "Encapsulate": True, "Content": data_uri("image/jpeg", jpeg_bytes("L"))}),
    Case("encapsulate-jpeg-progressive", {"Tags": {}, "Encapsulate": True,
                                          "Content": data_uri("image/jpeg", jpeg_bytes("RGB", progressive=True))}),
    Case("encapsulate-png", {"Tags": {}, "Encapsulate": True, "Content": PNG_L}),
    Case("encapsulate-pdf", {"Tags": {}, "Encapsulate": True, "Content": data_uri("application/pdf", pdf_bytes())}),
    Case("encapsulate-false", {"Tags": {}, "Encapsulate": False, "Content": data_uri("image/jpeg", JPEG_RGB)}),
    Case("encapsulate-wrong-type", {"Tags": {}, "Encapsulate": "yes", "Content": data_uri("image/jpeg", JPEG_RGB)}),
    Case("encapsulate-series", {"Tags": {}, "Encapsulate": True, "Content": [data_uri("image/jpeg", JPEG_RGB),
                                                                            data_uri("image/jpeg", jpeg_bytes("L"))]}),
    Case("synchronous-field", {"Tags": {}, "Synchronous": False, "Asynchronous": True}),

    # 5. Parent ------------------------------------------------------------------
    Case("parent-patient", {"Parent": PARENT, "Tags": {"StudyDescription": "child"}}, parent="patient"),
    Case("parent-study", {"Parent": PARENT, "Tags": {"SeriesDescription": "child"}}, parent="study"),
    Case("parent-series", {"Parent": PARENT, "Tags": {"ImageComments": "child"}, "Content": PNG_L}, parent="series"),
    Case("parent-series-override", {"Parent": PARENT, "Tags": {"PatientName": "Other"}}, parent="series"),
    Case("parent-series-charset-override", {"Parent": PARENT, "Tags": {"SpecificCharacterSet": "ISO_IR 100",
                                                                       "ImageComments": "é"}}, parent="series"),
    Case("parent-study-latin1", {"Parent": PARENT, "Tags": {"SeriesDescription": "Série"}}, parent="study",
         setup=PARENT_SETUP_LATIN1),
    Case("parent-instance", {"Parent": PARENT, "Tags": {}}, parent="instance"),
    Case("parent-unknown", {"Parent": "nope", "Tags": {}}),
    Case("parent-not-string", {"Parent": 5, "Tags": {}}),
    Case("parent-series-content-array", {"Parent": PARENT, "Tags": {}, "Content": [PNG_L, PNG_TINY]}, parent="series"),
]


# What the cores answer to each case: HTTP status, or (HTTP status, OrthancStatus) for an error,
# one column per Orthanc version. Recorded on 2026-11-27, when the cases were written (commit
# 3810410), by sending each case to an Orthanc without the plugin: Debian 12's 1.10.1 (the
# bookworm leg's core) and Debian testing's 1.13.0 (the forky leg's). Not taken on trust since:
# the parity test checks on every leg that the live core still answers what its column says.
CORE_ANSWERS = {
    'body-not-json': {V110: (400, 8), V113: (400, 8)},
    'body-json-array': {V110: (400, 8), V113: (400, 8)},
    'body-json-string': {V110: (400, 8), V113: (400, 8)},
    'body-empty-object': {V110: 200, V113: 200},
    'v1-flat': {V110: 200, V113: 200},
    'v1-flat-pixeldata': {V110: 200, V113: 200},
    'v1-flat-non-string': {V110: (400, 2019), V113: (400, 2019)},
    'v1-flat-unknown-tag': {V110: (500, 27), V113: (500, 27)},
    'v1-flat-nonascii': {V110: 200, V113: 200},
    'v1-flat-sequence': {V110: (400, 15), V113: (400, 15)},
    'tags-is-array': {V110: (400, 8), V113: (400, 8)},
    'tags-is-string': {V110: (400, 8), V113: (400, 8)},
    'tags-is-null': {V110: (400, 8), V113: (400, 8)},
    'tags-empty': {V110: 200, V113: 200},
    'tags-basic': {V110: 200, V113: 200},
    'tags-hex-upper-lower': {V110: 200, V113: 200},
    'tags-hex-no-comma': {V110: 200, V113: 200},
    'tags-unknown-name': {V110: (500, 27), V113: (500, 27)},
    'tags-null-value': {V110: 200, V113: 200},
    'tags-empty-string': {V110: 200, V113: 200},
    'tags-sequence': {V110: 200, V113: 200},
    'tags-sequence-nested': {V110: 200, V113: 200},
    'tags-sequence-empty': {V110: 200, V113: 200},
    'tags-sequence-empty-item': {V110: 200, V113: 200},
    'tags-sequence-item-array': {V110: 200, V113: 200},
    'tags-sequence-item-string': {V110: (400, 5), V113: (400, 5)},
    'tags-sequence-as-string': {V110: (400, 15), V113: (400, 15)},
    'tags-array-for-string-vr': {V110: (400, 5), V113: (400, 5)},
    'tags-object-value': {V110: (400, 5), V113: (400, 5)},
    'tags-number-string-vr': {V110: (400, 5), V113: (400, 5)},
    'tags-bool-string-vr': {V110: (400, 5), V113: (400, 5)},
    'tags-number-is-ds': {V110: (400, 5), V113: (400, 5)},
    'tags-us-string': {V110: (400, 15), V113: 200},
    'tags-us-number': {V110: (400, 5), V113: (400, 5)},
    'tags-us-bool': {V110: (400, 5), V113: (400, 5)},
    'tags-us-out-of-range': {V110: (400, 15), V113: (400, 15)},
    'tags-us-negative': {V110: 200, V113: 200},
    'tags-us-non-numeric': {V110: (400, 15), V113: (400, 15)},
    'tags-us-empty': {V110: 200, V113: 200},
    'tags-us-spaces': {V110: (400, 15), V113: (400, 15)},
    'tags-ss-sl-ul': {V110: 200, V113: 200},
    'tags-fl-fd': {V110: (400, 15), V113: 200},
    'tags-fl': {V110: 200, V113: 200},
    'tags-fd-non-numeric': {V110: (400, 15), V113: (400, 15)},
    'tags-fd-number': {V110: (400, 5), V113: (400, 5)},
    'tags-at': {V110: 200, V113: 200},
    'tags-at-name': {V110: 200, V113: 200},
    'tags-at-bad': {V110: (500, 27), V113: (500, 27)},
    'tags-ds-is-multi': {V110: 200, V113: 200},
    'tags-ob-data-uri': {V110: 200, V113: 200},
    'tags-ob-data-uri-nointerpret': {V110: 200, V113: 200},
    'tags-ow-data-uri': {V110: 200, V1127: 200, V113: (400, 15)},
    'tags-string-data-uri': {V110: 200, V113: 200},
    'tags-string-data-uri-nointerpret': {V110: 200, V113: 200},
    'tags-string-data-uri-octet': {V110: 200, V113: 200},
    'tags-encdoc-pdf-uri': {V110: 200, V113: 200},
    'tags-ob-other-data-uri': {V110: 200, V113: 200},
    'tags-ow-plain-string': {V110: 200, V1127: 200, V113: (400, 15)},
    'tags-fl-b1rms': {V110: 200, V113: 200},
    'tags-us-or-ss': {V110: 200, V113: 200},
    'tags-ow-numeric': {V110: (500, -1), V1127: (500, -1), V113: 200},
    'tags-ob-plain-string': {V110: 200, V113: 200},
    'tags-pixeldata': {V110: (400, 2021), V113: (400, 2021)},
    'tags-pixeldata-hex': {V110: (400, 2021), V113: (400, 2021)},
    'charset-iso-ir-100': {V110: 200, V113: 200},
    'charset-iso-ir-192': {V110: 200, V113: 200},
    'charset-iso-ir-144': {V110: 200, V113: 200},
    'charset-iso-ir-101': {V110: 200, V113: 200},
    'charset-iso-ir-109': {V110: 200, V113: 200},
    'charset-iso-ir-110': {V110: 200, V113: 200},
    'charset-iso-ir-148': {V110: 200, V113: 200},
    'charset-iso-ir-127': {V110: 200, V113: 200},
    'charset-iso-ir-126': {V110: 200, V113: 200},
    'charset-iso-ir-138': {V110: 200, V113: 200},
    'charset-iso-ir-166': {V110: 200, V113: 200},
    'charset-iso-ir-13': {V110: 200, V113: 200},
    'charset-iso-2022-ir-87': {V110: 200, V113: 200},
    'charset-gb18030': {V110: 200, V113: 200},
    'charset-gbk': {V110: 200, V113: 200},
    'charset-iso-2022-ir-149': {V110: 200, V113: 200},
    'charset-iso-2022-ir-58': {V110: 200, V113: 200},
    'charset-iso-ir-6': {V110: 200, V113: 200},
    'charset-empty': {V110: (400, 3), V113: (400, 3)},
    'charset-unknown': {V110: (400, 3), V113: (400, 3)},
    'charset-not-string': {V110: (500, -1), V113: (500, -1)},
    'charset-hex-key': {V110: 200, V113: 200},
    'nonascii-default-latin1': {V110: 200, V113: 200},
    'nonascii-default-utf8': {V110: 200, V113: 200},
    'default-encoding-put-utf8': {V110: 200, V113: 200},
    'default-encoding-put-cyrillic': {V110: 200, V113: 200},
    'default-encoding-put-windows1251': {V110: 200, V113: 200},
    'default-encoding-put-ascii': {V110: 200, V113: 200},
    'private-with-creator-field': {V110: 200, V113: 200},
    'private-no-creator': {V110: 200, V113: 200},
    'private-explicit-creator-tag': {V110: 200, V113: 200},
    'private-creator-tag-only': {V110: 200, V113: 200},
    'private-sequence': {V110: (400, 5), V113: (400, 5)},
    'private-default-creator-config': {V110: (400, 15), V113: 200},
    'private-dictionary-by-name': {V110: 200, V113: 200},
    'private-dictionary-other-creator': {V110: 200, V113: 200},
    'private-dictionary-sq': {V110: 200, V113: 200},
    'group-length': {V110: 200, V113: 200},
    'group-length-0008': {V110: 200, V113: 200},
    'override-patientid': {V110: 200, V113: 200},
    'override-study-uid': {V110: (400, 2020), V113: (400, 2020)},
    'override-study-uid-force': {V110: 200, V113: 200},
    'override-sop-instance-uid': {V110: (400, 2020), V113: (400, 2020)},
    'override-sop-class-uid': {V110: 200, V113: 200},
    'override-dates': {V110: 200, V113: 200},
    'already-stored': {V110: 200, V113: 200},
    'override-mediastorage': {V110: 200, V113: 200},
    'override-transfer-syntax': {V110: 200, V113: 200},
    'force-wrong-type': {V110: (400, 8), V113: (400, 8)},
    'interpret-wrong-type': {V110: (400, 8), V113: (400, 8)},
    'private-creator-wrong-type': {V110: (400, 8), V113: (400, 8)},
    'force-false': {V110: (400, 2020), V113: (400, 2020)},
    'png-gray8': {V110: 200, V113: 200},
    'png-gray16': {V110: 200, V113: 200},
    'png-rgb': {V110: 200, V113: 200},
    'png-rgba': {V110: 200, V113: 200},
    'png-la': {V110: (500, 2), V113: (500, 2)},
    'png-palette': {V110: (500, 2), V113: (500, 2)},
    'png-1bit': {V110: (500, 2), V113: (500, 2)},
    'png-rgb16': {V110: (500, 2), V113: (500, 2)},
    'png-rgba16': {V110: (500, 2), V113: 200},
    'png-la16': {V110: (500, 2), V113: (500, 2)},
    'png-odd-width': {V110: 200, V113: 200},
    'png-photometric-preset': {V110: 200, V113: 200},
    'png-rows-preset': {V110: 200, V113: 200},
    'png-corrupt': {V110: (400, 15), V113: (400, 15)},
    'jpeg-gray': {V110: 200, V113: 200},
    'jpeg-rgb': {V110: 200, V113: 200},
    'jpeg-cmyk': {V110: (500, 2), V113: (500, 2)},
    'jpeg-progressive': {V110: 200, V113: 200},
    'mime-image-jpg': {V110: (400, 3), V113: 200},
    'mime-uppercase': {V110: 200, V113: 200},
    'datauri-no-base64': {V110: (400, 15), V113: (400, 15)},
    'datauri-bad-base64': {V110: (400, 15), V113: (400, 15)},
    'datauri-charset-param': {V110: (400, 15), V113: (400, 15)},
    'datauri-whitespace': {V110: (400, 15), V113: (400, 15)},
    'datauri-leading-space': {V110: (400, 15), V113: (400, 15)},
    'datauri-slashes': {V110: (400, 3), V113: (400, 3)},
    'datauri-not-a-uri': {V110: (400, 15), V113: (400, 15)},
    'datauri-empty-payload': {V110: (400, 15), V113: (400, 15)},
    'pdf': {V110: 200, V113: 200},
    'pdf-odd-length': {V110: 200, V113: 200},
    'pdf-not-pdf': {V110: (400, 15), V113: (400, 15)},
    'pdf-presets': {V110: 200, V113: 200},
    'stl-ascii': {V110: (400, 3), V113: 200},
    'stl-binary': {V110: (400, 3), V113: 200},
    'obj': {V110: (400, 3), V113: 200},
    'mtl-odd': {V110: (400, 3), V113: 200},
    'pam': {V110: 200, V113: 200},
    'octet-stream-no-dims': {V110: 200, V113: 200},
    'octet-stream-with-dims': {V110: 200, V113: 200},
    'octet-stream-odd': {V110: 200, V113: 200},
    'mime-gif': {V110: (500, 2), V113: (500, 2)},
    'mime-unknown': {V110: (400, 3), V113: (400, 3)},
    'content-number': {V110: (400, 2023), V113: (400, 2023)},
    'content-object': {V110: (400, 2023), V113: (400, 2023)},
    'content-null': {V110: (400, 2023), V113: (400, 2023)},
    'content-empty-string': {V110: (400, 15), V113: (400, 15)},
    'series-strings': {V110: 200, V113: 200},
    'series-items-tags': {V110: 200, V113: 200},
    'series-mixed-pdf': {V110: 200, V113: 200},
    'series-single': {V110: 200, V113: 200},
    'series-empty': {V110: 200, V113: 200},
    'series-item-no-content': {V110: (400, 2022), V113: (400, 2022)},
    'series-fail-middle': {V110: (400, 3), V113: (400, 3)},
    'series-fail-first': {V110: (404, 17), V113: (404, 17)},
    'series-item-number': {V110: (400, 2023), V113: (400, 2023)},
    'series-item-unknown-tag': {V110: (500, 27), V113: (500, 27)},
    'series-item-override': {V110: (404, 17), V113: (404, 17)},
    'series-item-tags-not-object': {V110: (404, 17), V113: (404, 17)},
    'encapsulate-jpeg-rgb': {V110: 200, V113: 200},
    'encapsulate-jpeg-gray': {V110: 200, V113: 200},
    'encapsulate-jpeg-progressive': {V110: 200, V113: 200},
    'encapsulate-png': {V110: 200, V113: (500, 2)},
    'encapsulate-pdf': {V110: 200, V113: (500, 2)},
    'encapsulate-false': {V110: 200, V113: 200},
    'encapsulate-wrong-type': {V110: 200, V113: (500, -1)},
    'encapsulate-series': {V110: 200, V113: (500, 2)},
    'synchronous-field': {V110: 200, V113: 200},
    'parent-patient': {V110: 200, V113: 200},
    'parent-study': {V110: 200, V113: 200},
    'parent-series': {V110: 200, V113: 200},
    'parent-series-override': {V110: (400, 2020), V113: (400, 2020)},
    'parent-series-charset-override': {V110: 200, V113: 200},
    'parent-study-latin1': {V110: 200, V113: 200},
    'parent-instance': {V110: (400, 2025), V113: (400, 2025)},
    'parent-unknown': {V110: (400, 2024), V113: (400, 2024)},
    'parent-not-string': {V110: (400, 2024), V113: (400, 2024)},
    'parent-series-content-array': {V110: 200, V113: 200},
}

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "duplicate case ids"

# Where the plugin deliberately answers otherwise than every core: a clear 400 where
# the core answers 500 (or 404) for the client's mistake, and conversions the core
# refuses although a faithful one exists (palette, gray+alpha, 1-bit, 16-bit colour),
# and JPEG encapsulation in a series.
PLUGIN_STATUS = {
    "charset-not-string": 400,
    "encapsulate-wrong-type": 400,
    "series-fail-first": 400,
    "series-item-override": 400,
    "series-item-tags-not-object": 400,
    "png-la": 200,
    "png-palette": 200,
    "png-1bit": 200,
    "png-rgb16": 200,
    "png-la16": 200,
    "encapsulate-series": 200,
    "synchronous-field": 200,  # "Asynchronous": true runs a job (test_jobs.py); the core ignores it
    # Content the plugin cannot convert: 415 Unsupported media type, where the core answers 500
    # "Not implemented yet" (a server fault to a client, which would retry).
    "jpeg-cmyk": 415,
    "mime-gif": 415,
    "encapsulate-png": 415,
    "encapsulate-pdf": 415,
}
for _c in CASES:
    if _c.id in PLUGIN_STATUS:
        _c.expect_status = PLUGIN_STATUS[_c.id]

# The plugin behaves like Orthanc 1.13.0 on every leg. On 1.10.1 these cases are
# checked against what 1.13.0 answers, and their files are not compared with 1.10.1's:
# those whose status differs between the versions, and those whose files differ.
NEWER_THAN_110 = {c.id for c in CASES if c.id in CORE_ANSWERS
                  and CORE_ANSWERS[c.id][V110] != CORE_ANSWERS[c.id][V113]} | {
    "tags-ow-data-uri", "tags-ow-plain-string", "tags-ow-numeric",  # OW read as numbers
    "pdf-presets",  # a SOPClassUID given in Tags is kept
    "encapsulate-jpeg-rgb", "encapsulate-jpeg-gray", "encapsulate-jpeg-progressive",
}


def core_answer(case_id, version):
    """(HTTP status, OrthancStatus or None) recorded for the core of `version`, or None if none is."""
    recorded = CORE_ANSWERS.get(case_id, {}).get(version)
    if recorded is None:
        return None
    return (recorded, None) if isinstance(recorded, int) else recorded


# Debian 13's 1.12.7 (the trixie leg's core, recorded 2026-12-03) still reads OW values as bytes,
# as 1.10.1 does; every other case answers there as on 1.13.0 (files compared on the trixie leg).
NEWER_THAN_1127 = {"tags-ow-data-uri", "tags-ow-plain-string", "tags-ow-numeric"}
NEWER_THAN = {V110: NEWER_THAN_110, V1127: NEWER_THAN_1127}

# The oracle of the bookworm and trixie legs, which have no Orthanc 1.13.0 to ask: for the cases
# above, (HTTP status, OrthancStatus or None) as Orthanc 1.13.0's core answered them (CORE_ANSWERS'
# 1.13.0 column, observed on the forky leg's core and checked again on each forky run); the
# plugin must answer the same on 1.10.1 and 1.12.7.
ORACLE_1_13_0 = {case_id: core_answer(case_id, V113) for case_id in NEWER_THAN_110 | NEWER_THAN_1127}


def expected_on(case, version):
    """(status, Orthanc error code or None) the plugin must answer on a core of `version`,
    or None when it must answer what that core answers."""
    if case.id in NEWER_THAN.get(version, ()):
        return (case.expect_status, None) if case.expect_status else ORACLE_1_13_0[case.id]
    if case.expect_status:
        return case.expect_status, None
    return None
