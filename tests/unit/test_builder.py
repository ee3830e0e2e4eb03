"""The create-dicom builder, checked by reading its files back with pydicom."""
import base64
import dataclasses
import datetime
import io
import itertools
import json

import pydicom
import pytest
from PIL import Image

from advanced_rest.dicomize import builder, charsets, parents, request
from advanced_rest.dicomize.dictionary import Dictionary
from advanced_rest.errors import (AdvancedRestError, BadFileFormat, BadParameterType, LimitExceeded, OrthancError,
                                  UnknownDicomTag)

NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)


def environment(encoding="Latin1", dictionary=None, creator=""):
    counter = itertools.count(1)
    return builder.Environment(
        dictionary=dictionary or Dictionary(),
        default_encoding=charsets.from_name(encoding),
        default_private_creator=creator,
        max_image_pixels=10_000,
        strict=False,
        software_version="test",
        now=NOW,
        new_uid=lambda: "2.25.%d" % next(counter),
        new_patient_id=lambda: "patient-id",
    )


def build(body, env=None, parent=None):
    files = builder.build(request.parse(json.dumps(body).encode()), env or environment(), parent)
    return [pydicom.dcmread(io.BytesIO(data)) for data in files]


def png(mode, size=(3, 2), color=None):
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_generated_tags_and_dates():
    (ds,) = build({"Tags": {"PatientName": "Doe^John"}})
    assert ds.PatientID == "patient-id"
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == ("2.25.1", "2.25.2", "2.25.3")
    assert ds.file_meta.MediaStorageSOPInstanceUID == "2.25.3"
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate"):
        assert ds.data_element(keyword).value == "20240506"
    assert ds.ContentTime == "070809.000000"
    # beyond the core: sendable (no content: Raw Data, whose IOD holds what no other one describes)
    assert (ds.SOPClassUID, ds.Modality) == (builder.RAW_DATA, "OT")
    assert ds.file_meta.MediaStorageSOPClassUID == builder.RAW_DATA


@pytest.mark.parametrize("body, sop_class, modality", [
    ({"Tags": {}, "Content": "PNG"}, builder.SECONDARY_CAPTURE, "OT"),
    ({"Tags": {"Modality": "XC"}, "Content": "PNG"}, builder.SECONDARY_CAPTURE, "XC"),
    ({"Tags": {"SOPClassUID": "1.2.3"}, "Content": "PNG"}, "1.2.3", "OT"),
    ({"Tags": {"Modality": "CT", "SOPClassUID": "1.2.3"}}, "1.2.3", "CT"),
    ({"PatientName": "Legacy", "PixelData": "PNG"}, builder.SECONDARY_CAPTURE, "OT"),
    ({"Tags": {}, "Content": "data:application/pdf;base64,JVBERi0xLjQK"}, "1.2.840.10008.5.1.4.1.1.104.1", "OT"),
], ids=["png", "png-modality", "png-sop-class", "both-given", "legacy", "pdf-as-the-core"])
def test_what_a_c_store_needs_is_filled_where_absent(body, sop_class, modality):
    text = json.dumps(body).replace('"PNG"', json.dumps(png("L")))
    (ds,) = build(json.loads(text))
    assert (ds.SOPClassUID, ds.Modality, ds.file_meta.MediaStorageSOPClassUID) == (sop_class, modality, sop_class)


def test_jpeg2000_is_kept_as_it_comes():
    out = io.BytesIO()
    Image.new("RGB", (5, 4), (10, 200, 30)).save(out, "JPEG2000", irreversible=True, mct=1, no_jp2=True)
    sent = out.getvalue()
    (ds,) = build({"Tags": {}, "Content": "data:image/jp2;base64," + base64.b64encode(sent).decode(),
                   "Strict": True})
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91"
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation) == (4, 5, 3, "YBR_ICT")
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.PlanarConfiguration) == \
        (8, 8, 7, 0, 0)
    assert (ds.LossyImageCompression, ds.LossyImageCompressionMethod) == ("01", "ISO_15444_1")
    assert ds.SOPClassUID == builder.SECONDARY_CAPTURE
    (fragment,) = pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)
    assert fragment[:len(sent)] == sent


def test_jpeg2000_beyond_the_pixel_limit_is_refused_from_its_header():
    out = io.BytesIO()
    Image.new("L", (200, 100)).save(out, "JPEG2000", no_jp2=True)
    with pytest.raises(LimitExceeded, match="MaxImagePixels"):
        build({"Tags": {}, "Content": "data:image/jp2;base64," + base64.b64encode(out.getvalue()).decode()})


def test_values_use_the_encoding():
    (latin1,) = build({"Tags": {"PatientName": "Jérôme"}})
    (utf8,) = build({"Tags": {"PatientName": "Jérôme", "SpecificCharacterSet": "ISO_IR 192"}})
    assert latin1["PatientName"].value.original_string == "Jérôme".encode("latin-1")
    assert utf8["PatientName"].value.original_string == "Jérôme".encode("utf-8")
    assert utf8.SpecificCharacterSet == "ISO_IR 192"


@pytest.mark.parametrize("tags, keyword, expected", [
    ({"Rows": "512"}, "Rows", 512),
    ({"0028,0010": "7"}, "Rows", 7),
    ({"AcquisitionMatrix": "1\\2\\3\\4"}, "AcquisitionMatrix", [1, 2, 3, 4]),
    ({"Rows": "-1"}, "Rows", 65535),
    ({"SliceThickness": "1.5"}, "SliceThickness", 1.5),
    ({"PatientWeight": ""}, "PatientWeight", None),
    ({"PatientName": None}, "PatientName", ""),
], ids=["name", "hex", "multi-valued-US", "wrapped-negative", "DS", "empty", "null"])
def test_tag_values(tags, keyword, expected):
    (ds,) = build({"Tags": tags})
    value = ds.data_element(keyword).value
    assert (list(value) if isinstance(expected, list) else value) == expected


def test_sequences_nest():
    (ds,) = build({"Tags": {"ReferencedStudySequence": [
        {"ReferencedSOPClassUID": "1.2.3", "ReferencedSOPInstanceUID": "1.2.3.4"}, []]}})
    assert len(ds.ReferencedStudySequence) == 2
    assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == "1.2.3.4"


@pytest.mark.parametrize("tags, error", [
    ({"NoSuchTag": "x"}, UnknownDicomTag),
    ({"PatientName": 5}, BadParameterType),
    ({"PatientName": ["x"]}, BadParameterType),
    ({"Rows": "abc"}, BadFileFormat),
    ({"Rows": "70000"}, BadFileFormat),
    ({"Rows": None}, BadFileFormat),
], ids=["unknown", "number", "array-on-string", "not-a-number", "overflow", "null-number"])
def test_bad_tag_values(tags, error):
    with pytest.raises(error):
        build({"Tags": tags})


def test_generated_tags_need_force():
    with pytest.raises(AdvancedRestError) as caught:
        build({"Tags": {"SOPInstanceUID": "1.2.3"}})
    assert caught.value.code == 2020
    (ds,) = build({"Tags": {"SOPInstanceUID": "1.2.3"}, "Force": True})
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3"
    (ds,) = build({"Tags": {"PatientID": "mine", "StudyDate": "20000101"}})
    assert (ds.PatientID, ds.StudyDate) == ("mine", "20000101")


@pytest.mark.parametrize("mode, color, photometric, samples, bits, data", [
    ("L", 7, "MONOCHROME2", 1, 8, bytes([7] * 6)),
    ("RGB", (1, 2, 3), "RGB", 3, 8, bytes([1, 2, 3] * 6)),
    ("RGBA", (1, 2, 3, 4), "RGB", 3, 8, bytes([1, 2, 3] * 6)),
    ("LA", (9, 100), "MONOCHROME2", 1, 8, bytes([9] * 6)),
    ("I;16", 300, "MONOCHROME2", 1, 16, (300).to_bytes(2, "little") * 6),
    ("1", 1, "MONOCHROME2", 1, 8, bytes([255] * 6)),
], ids=["gray8", "rgb", "rgba-drops-alpha", "gray-alpha", "gray16", "1-bit"])
def test_png_pixel_formats(mode, color, photometric, samples, bits, data):
    (ds,) = build({"Tags": {}, "Content": png(mode, color=color)})
    assert (ds.Columns, ds.Rows) == (3, 2)
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit) \
        == (photometric, samples, bits, bits, bits - 1)
    assert ds.PixelData[:len(data)] == data
    assert ds["PixelData"].VR == "OW"


def test_palette_png_becomes_rgb():
    image = Image.new("P", (2, 2))
    image.putpalette([10, 20, 30] + [0] * 765)
    out = io.BytesIO()
    image.save(out, "PNG")
    (ds,) = build({"Tags": {}, "Content": "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()})
    assert ds.PhotometricInterpretation == "RGB" and ds.PixelData == bytes([10, 20, 30] * 4)


def test_forged_dimensions_fail_fast():
    header = bytearray(base64.b64decode(png("L").split(",", 1)[1]))
    header[16:24] = (100000).to_bytes(4, "big") * 2  # IHDR width and height
    with pytest.raises(LimitExceeded, match=r"AdvancedRest.MaxImagePixels \(10000\)"):
        build({"Tags": {}, "Content": "data:image/png;base64," + base64.b64encode(bytes(header)).decode()})


def test_environment_limits_decoded_bytes():
    assert environment().max_image_bytes == 256 * 1024 * 1024
    small = dataclasses.replace(environment(), max_image_bytes=3 * 2 * 3 - 1)  # a 3x2 RGB image needs 18
    (ds,) = build({"Tags": {}, "Content": png("RGB")})
    assert ds.Columns == 3
    with pytest.raises(LimitExceeded, match=r"AdvancedRest.MaxImageBytes \(17\)"):
        build({"Tags": {}, "Content": png("RGB")}, small)
    with pytest.raises(LimitExceeded) as refused:
        build({"Tags": {}, "Content": [png("RGB")]}, small)
    assert refused.value.details.startswith("Content[0]: ") and "MaxImageBytes" in refused.value.details
    jpeg = io.BytesIO()
    Image.new("RGB", (3, 2)).save(jpeg, "JPEG")
    with pytest.raises(LimitExceeded, match="MaxImageBytes"):
        build({"Tags": {}, "Encapsulate": True,
               "Content": "data:image/jpeg;base64," + base64.b64encode(jpeg.getvalue()).decode()}, small)


@pytest.mark.parametrize("mime, fmt, mode", [
    ("image/png", "BMP", "RGB"), ("image/png", "GIF", "P"), ("image/png", "TIFF", "RGB"), ("image/png", "PPM", "RGB"),
    ("image/png", "JPEG", "CMYK"), ("image/jpeg", "PNG", "RGB"), ("image/jpg", "PNG", "RGB"),
])
def test_content_decodes_only_as_its_mime_type_says(mime, fmt, mode):
    out = io.BytesIO()
    Image.new(mode, (3, 2)).save(out, fmt)
    with pytest.raises(BadFileFormat) as refused:
        build({"Tags": {}, "Content": "data:%s;base64,%s" % (mime, base64.b64encode(out.getvalue()).decode())})
    assert (refused.value.http_status, refused.value.code) == (400, 15)


def test_pdf_is_encapsulated_and_padded():
    pdf = b"%PDF-1.4 tiny"
    (ds,) = build({"Tags": {}, "Content": "data:application/pdf;base64," + base64.b64encode(pdf).decode()})
    assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert (ds.Modality, ds.ConversionType, ds.MIMETypeOfEncapsulatedDocument) == ("OT", "WSD", "application/pdf")
    assert ds.EncapsulatedDocument == pdf + b"\0"


@pytest.mark.parametrize("mime, sop_class", [
    ("model/stl", "1.2.840.10008.5.1.4.1.1.104.3"),
    ("model/obj", "1.2.840.10008.5.1.4.1.1.104.4"),
    ("model/mtl", "1.2.840.10008.5.1.4.1.1.104.5"),
])
def test_3d_models(mime, sop_class):
    (ds,) = build({"Tags": {}, "Content": "data:%s;base64,c29saWQ=" % mime})
    assert (ds.SOPClassUID, ds.Modality, ds.MIMETypeOfEncapsulatedDocument) == (sop_class, "M3D", mime)


def test_series_numbers_instances_and_shares_tags():
    files = build({"Tags": {"PatientName": "A"}, "Content": [png("L"), {"Content": png("L"), "Tags": {"ImageComments": "x"}}]})
    assert [ds.InstanceNumber for ds in files] == [1, 2]
    assert [ds.ImageIndex for ds in files] == [1, 2]
    assert {ds.SeriesInstanceUID for ds in files} == {"2.25.2"}
    assert len({ds.SOPInstanceUID for ds in files}) == 2
    assert files[0].ImagesInAcquisition == 2 and files[1].ImageComments == "x"


@pytest.mark.parametrize("content, code", [
    ([png("L"), {"Tags": {}}], 2022),
    ([png("L"), 5], 2023),
    (5, 2023),
], ids=["item-without-content", "item-not-a-string", "content-not-a-string"])
def test_series_errors(content, code):
    with pytest.raises(AdvancedRestError) as caught:
        build({"Tags": {}, "Content": content})
    assert caught.value.code == code


def test_parent_series_inherits_its_modules_and_keeps_its_dates():
    parent = parents.Parent("Series", {
        "0010,0010": {"Type": "String", "Value": "Parent^Name"},
        "0020,000d": {"Type": "String", "Value": "1.2.3"},
        "0008,0060": {"Type": "String", "Value": "CT"},
        "0008,0020": {"Type": "String", "Value": "19990101"},
        "0008,0021": {"Type": "String", "Value": "19990102"},
        "0008,0070": {"Type": "String", "Value": "not inherited"},
        "0008,0005": {"Type": "String", "Value": "ISO_IR 192"},
    })
    (ds,) = build({"Tags": {}}, parent=parent)
    assert (ds.PatientName, ds.StudyInstanceUID, ds.Modality) == ("Parent^Name", "1.2.3", "CT")
    assert (ds.StudyDate, ds.SeriesDate, ds.SpecificCharacterSet) == ("19990101", "19990102", "ISO_IR 192")
    assert "Manufacturer" not in ds
    with pytest.raises(AdvancedRestError) as caught:
        build({"Tags": {"Modality": "MR"}}, parent=parent)
    assert caught.value.code == 2020


def test_legacy_flat_body():
    (ds,) = build({"PatientName": "Flat"})
    assert ds.PatientName == "Flat" and "StudyDate" not in ds and "SpecificCharacterSet" not in ds
    with pytest.raises(AdvancedRestError) as caught:
        build({"PatientName": 5})
    assert caught.value.code == 2019


def test_custom_dictionary_tag():
    dictionary = Dictionary({"0009,1001": ["DS", "MyValue", 1, 1, "Me"]})
    (ds,) = build({"Tags": {"MyValue": "1.5"}, "PrivateCreator": "Me"}, environment(dictionary=dictionary))
    assert ds[0x00091001].VR == "DS" and ds[0x00091001].value == 1.5


def test_encapsulated_jpeg_is_kept_as_is():
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(out, "JPEG")
    jpeg = out.getvalue()
    (ds,) = build({"Tags": {}, "Encapsulate": True,
                   "Content": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()})
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert (ds.Columns, ds.Rows, ds.PhotometricInterpretation) == (8, 6, "YBR_FULL_422")
    from pydicom.encaps import generate_frames
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    assert frame.rstrip(b"\0") == jpeg.rstrip(b"\0")


def test_encapsulate_refuses_what_is_not_jpeg():
    with pytest.raises(AdvancedRestError) as caught:
        build({"Tags": {}, "Encapsulate": True, "Content": png("L")})
    assert caught.value.http_status == 415 and "image/png" in caught.value.details


def _raw_png(color_type, depth, width=3, height=2):
    """A PNG made by hand (Pillow cannot write 16-bit colour), sample = x*5000 + y*3000 + c*9000."""
    import struct
    import zlib
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    rows = b"".join(b"\0" + b"".join(((x * 5000 + y * 3000 + c * 9000) % (1 << depth)).to_bytes(depth // 8, "big")
                                     for x in range(width) for c in range(channels)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    png_data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png_data).decode()


@pytest.mark.parametrize("color_type, depth, channels_kept, photometric", [
    (0, 16, 1, "MONOCHROME2"),
    (2, 16, 3, "RGB"),
    (4, 16, 1, "MONOCHROME2"),
    (6, 16, 3, "RGB"),
    (2, 8, 3, "RGB"),
    (4, 8, 1, "MONOCHROME2"),
    (6, 8, 3, "RGB"),
], ids=["gray16", "rgb16", "gray-alpha16", "rgba16", "rgb8", "gray-alpha8", "rgba8"])
def test_png_samples_are_kept_exactly_and_alpha_dropped(color_type, depth, channels_kept, photometric):
    (ds,) = build({"Tags": {}, "Content": _raw_png(color_type, depth)})
    expected = [(x * 5000 + y * 3000 + c * 9000) % (1 << depth)
                for y in range(2) for x in range(3) for c in range(channels_kept)]
    width = depth // 8
    got = [int.from_bytes(ds.PixelData[i:i + width], "little") for i in range(0, len(expected) * width, width)]
    assert got == expected
    assert (ds.PhotometricInterpretation, ds.BitsStored, ds.SamplesPerPixel) == (photometric, depth, channels_kept)


def test_low_bit_depth_gray_is_scaled_to_8_bits():
    image = Image.new("L", (4, 1))
    image.putdata([0, 85, 170, 255])
    out = io.BytesIO()
    image.convert("L").save(out, "PNG", bits=2)
    (ds,) = build({"Tags": {}, "Content": "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()})
    assert ds.BitsAllocated == 8 and list(ds.PixelData[:4]) == [0, 85, 170, 255]


PARENT_ID = "01234567-89abcdef-01234567-89abcdef-01234567"


class FakeRest:
    """GET answers of Orthanc: `found` maps URIs to JSON; others fail with `error_code`."""

    def __init__(self, found=None, error_code=17):
        self.found, self.error_code, self.asked = found or {}, error_code, []

    def __call__(self, uri):
        self.asked.append(uri)
        if uri in self.found:
            return self.found[uri]
        raise OrthancError(uri, code=self.error_code)


def test_an_unknown_parent_is_2024():
    rest = FakeRest()
    with pytest.raises(AdvancedRestError) as caught:
        parents.resolve(PARENT_ID, rest)
    assert caught.value.code == 2024 and len(rest.asked) == 4  # series, study, patient, instance


def test_a_parent_instance_is_2025():
    with pytest.raises(AdvancedRestError) as caught:
        parents.resolve(PARENT_ID, FakeRest({"/instances/" + PARENT_ID: {}}))
    assert caught.value.code == 2025


def test_a_parent_is_found_at_its_level():
    rest = FakeRest({"/studies/" + PARENT_ID: {}, "/studies/%s/instances" % PARENT_ID: [{"ID": "i"}],
                     "/instances/i/tags": {"0010,0010": {"Type": "String", "Value": "x"}}})
    parent = parents.resolve(PARENT_ID, rest)
    assert parent.level == "Study" and parent.inherited() == [(0x00100010, "x")]


@pytest.mark.parametrize("code, status", [(36, 503), (4, 500), (-1, 500)])
def test_orthanc_failing_otherwise_is_not_an_unknown_parent(code, status):
    with pytest.raises(OrthancError) as caught:
        parents.resolve(PARENT_ID, FakeRest(error_code=code))
    assert (caught.value.code, caught.value.http_status) == (code, status)


def test_a_404_of_another_code_means_not_found_too():
    with pytest.raises(AdvancedRestError) as caught:
        parents.resolve(PARENT_ID, FakeRest(error_code=13))  # inexistent file: 404
    assert caught.value.code == 2024


# ---- Identity: what Orthanc reads back of a file, for metrics without a read-back ----------------------------

def _plan(body, env=None, parent=None):
    return builder.Plan(request.parse(json.dumps(body).encode()), env or environment(), parent)


def _identity_of(data):
    ds = pydicom.dcmread(io.BytesIO(data))
    return (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
            ds.file_meta.TransferSyntaxUID)


@pytest.mark.parametrize("body, modality", [
    ({"Tags": {"Modality": "CT"}, "Content": png("L")}, "CT"),
    ({"Tags": {}}, "OT"),
    ({"Tags": {"PatientID": "abc"}, "Content": png("RGB"), "Encapsulate": False}, "OT"),
    ({"Tags": {}, "Content": "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 x").decode()}, "OT"),
    ({"Tags": {}, "Content": [png("L"), png("L")], "MultiFrame": True}, "OT"),
], ids=["image", "no-content", "odd-patient-id", "pdf", "multi-frame"])
def test_the_identity_of_a_file_is_what_it_holds(body, modality):
    plan = _plan(body)
    data = plan.file(0)
    identity = plan.identity
    assert (identity.patient_id, identity.study_uid, identity.series_uid, identity.sop_uid,
            identity.transfer_syntax) == _identity_of(data)
    assert identity.modality == modality == pydicom.dcmread(io.BytesIO(data)).Modality


def test_the_files_of_a_series_have_its_first_files_modality_as_orthanc_keeps_it():
    plan = _plan({"Tags": {}, "Content": [png("L"), {"Content": png("L"), "Tags": {"Modality": "MR"}},
                                          "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4").decode()]})
    identities = []
    for index in range(plan.count):
        data = plan.file(index)
        identities.append(plan.identity)
        assert plan.identity[:4] + (plan.identity.transfer_syntax,) == _identity_of(data)
    assert [identity.modality for identity in identities] == ["OT", "OT", "OT"]


def test_a_file_whose_identity_is_not_known_for_sure_has_none():
    parent = parents.Parent("Series", {"0020,000e": {"Type": "String", "Value": "1.2.3.4"},
                                       "0008,0060": {"Type": "String", "Value": "CT"}})
    plan = _plan({"Tags": {}}, parent=parent)
    plan.file(0)
    assert plan.identity is None, "a parent series' Modality is its first instance's, which may not be this"
    study = parents.Parent("Study", {"0020,000d": {"Type": "String", "Value": "1.2.3"},
                                     "0010,0020": {"Type": "String", "Value": "P1"}})
    plan = _plan({"Tags": {"Modality": "US"}}, parent=study)
    plan.file(0)
    assert plan.identity[:3] + (plan.identity.modality,) == ("P1", "1.2.3", "2.25.2", "US"), "a new series"
    for tags in ({"PatientID": "é"}, {"PatientID": "ab "}, {"PatientID": " ab"}, {"PatientID": "a\\b"},
                 {"Modality": "mr "}, {"SeriesInstanceUID": "1.2.3.4", "Force": True}):
        force = tags.pop("Force", False)
        plan = _plan({"Tags": tags, "Force": force})
        plan.file(0)
        assert plan.identity is None, tags
    plan = _plan({"PatientName": "Flat"})  # legacy
    plan.file(0)
    assert plan.identity is None


def test_a_series_item_of_another_patient_or_a_plan_made_again_past_its_first_file_has_none():
    body = {"Tags": {}, "Content": [png("L"), {"Content": png("L"), "Tags": {"PatientID": "other"}}, png("L")]}
    plan = _plan(body)
    known = []
    for index in range(plan.count):
        plan.file(index)
        known.append(plan.identity is not None)
    assert known == [True, False, True], "item 1 makes a series of its own in Orthanc, whose Modality is its"
    again = _plan(body)  # a parked job's plan, made again from its request: file 0 is not built again
    again.file(2)
    assert again.identity is None
